"""Developer tools: the embedded Temporal dev server with a worker (``dev``), and the
live demo (``demo``, ``demo_services``) that ``recoveryctl demo`` runs."""
