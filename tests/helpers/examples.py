"""What the reference examples (``examples/``) run against in tests."""

# A namespace of its own on the session's dev server for the reference examples, which
# use the pinned names (task queue ``recovery-orchestrator``, coordinator
# ``recovery-coordinator``).
EXAMPLES_NAMESPACE = "examples"
