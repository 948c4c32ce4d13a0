"""recoveryctl: the operator's command line (console script ``starter.cli:main``).

- ``entry``: ``main`` and ``run``: parse, run under ``--timeout`` (``timeout``), print
  (``render``, ``views``, ``text``), exit with the code ``exit_codes`` gives.
- ``app``: the command tree; ``commands/``: the commands, one module per group.
- ``options``: how a command is declared; ``context``: what it gets (the top level's
  options, a lazy client); ``values``: parsers for option values.
"""

from starter.cli.entry import main, run

__all__ = ["main", "run"]
