"""``recoveryctl``'s commands, one module per group of commands.

Each module declares its commands with ``starter.cli.options.command`` and lists them in
``COMMANDS``; ``starter.cli.app`` registers every module's ``COMMANDS``.
"""
