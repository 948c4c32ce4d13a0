"""The client: what any program that drives the orchestrator uses.

``connection`` connects with Temporal's own settings; ``coordinator_client`` is the
one typed client of the coordinator's updates and queries; ``orchestrator`` is the
``RecoveryOrchestrator`` facade; the other modules are the pieces they stand on
(recoveries, the status cache, the circuit watch, deployments, the services file,
tracing, fleet metrics).
"""
