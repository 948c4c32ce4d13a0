"""The HTTP receiver (``recoveryctl serve``): alerts and plain requests in, signed links back.

- ``app``: the routes, the bearer token, bounded bodies, JSON errors, the server
- ``bodies``: Alertmanager's webhook body (version 4) and ``{"services": […]}``, checked
- ``intake``: what each door asks for, answered per alert or service
- ``scheduling``: automatic requests to the coordinator, as the circuit watch makes them
- ``links``: approve and cancel links, checked against the run they name
- ``pages``: the links' HTML pages
- ``config``: the receiver's settings; ``metrics``: its request counter
"""
