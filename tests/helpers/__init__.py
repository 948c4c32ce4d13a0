"""What tests share: servers, workers, clients and tools driven from a test.

Fixtures (the Temporal servers, ``store``, ``task_queue``, ``redis_url``…) are in
``tests/conftest.py``; everything a test calls is here, one module per subject:

- ``workers``: ``running_worker``, ``orchestrator_on`` (the product's worker, a started facade)
- ``waiting``: ``eventually``, to wait on a condition instead of a fixed sleep
- ``recoveries``: start a ``ServiceRecovery``, read its status, timers, events, patches;
  ``quiescent`` (nothing in flight: what it has not done it will not do by itself);
  ``is_running`` (a workflow the server has started)
- ``coordination``: wait for a coordinator's recoveries, read its children and history
- ``raw_coordinator``: a coordinator driven by raw updates and signals (``Coordinator``)
- ``ledgers``: the coordinator's ledger as plain Python (``NOW``, ``ledger``, ``report``…)
- ``status_fakes``: a fake coordinator and clock for the facade's status cache
- ``watching``: the circuit watch, once or long-lived
- ``policies``: recovery policies the tests reuse (``blocking_policy``…)
- ``histories``: ``HISTORIES``, ``load_history``, ``record_history`` (``tests/histories/``)
- ``servers``: ``free_port`` and scripted or gated HTTP health servers
- ``redis_server``: a real ``redis-server`` (``RedisServer``)
- ``breakers``: ``state_of``, a breaker's state as a store holds it
- ``processes``: a dev server and a worker in processes of their own, ``connect_when_up``
- ``pybreaker_service``: a service guarded by a real pybreaker breaker, in a process
- ``checks``: callable health checks a test's worker may run (``tests.helpers.checks:…``)
- ``prometheus``: scrape and read a metrics endpoint
- ``raw_payloads``: payloads exactly as any client may send them
- ``examples``: ``EXAMPLES_NAMESPACE``, where the reference examples run
- ``recoveryctl``: the CLI run in this process
- ``paths``: ``REPO``, the repository's root

No test module imports another test module or ``conftest``; a helper two tests need
moves here.
"""
