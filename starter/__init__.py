"""Client side: the connection helper, the RecoveryOrchestrator facade, the CLI, dev mode."""
