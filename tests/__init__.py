"""The test suite, in folders that mirror the product's packages.

- ``workflows/`` (``ledger/`` inside), ``activities/``, ``recovery_breakers/``,
  ``starter/client``, ``starter/cli``, ``starter/devtools``, ``starter/receiver``,
  ``worker/`` (``worker.py`` and its deployment), ``enhanced_agent_bus/``, ``examples/``,
  ``bench/``: the tests of that package, unit and end to end.
- ``reliability/``: adversarial suites across packages (kills, outages, hostile input,
  secrets), with the support modules only they use.
- ``helpers/``: what tests share (servers, workers, policies, waiting on a condition);
  fixtures are in ``conftest.py``. No test module imports another test module or
  ``conftest``.
- ``histories/`` and ``prometheus/``: data (recorded workflow histories, metric rules).
- ``test_docs.py``: the README and ``docs/``.
"""
