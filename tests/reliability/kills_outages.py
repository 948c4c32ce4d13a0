"""Take a breaker store away from the worker and give it back.

Redis: ``RedisServer.stop()`` then ``start()`` on the same port (its append-only file
brings the breakers back). SQLite: the tests run as root, so ``chmod`` stops no write,
and a read-only bind mount of the folder does not stop writes through a connection
already open (both tried). What does stop them is the immutable flag (``chattr +i``) on
the database and its write-ahead log: every write then fails with "disk I/O error",
and the same connection writes again once the flag is cleared. The shared-memory
index (``-shm``) is left alone: SQLite maps it into memory, and an immutable mapping
kills the writer with SIGBUS rather than failing its write.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _chattr(flag: str, files: list[Path]) -> None:
    """Run ``chattr flag files``.

    Raises:
        RuntimeError: ``chattr`` is missing or the file system refuses the flag.
    """
    chattr = shutil.which("chattr")
    if chattr is None:
        raise RuntimeError("chattr is missing (e2fsprogs): it makes the SQLite store unwritable")
    done = subprocess.run([chattr, flag, *map(str, files)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"chattr {flag} failed (root on ext4/xfs/btrfs needed): {done.stderr}")


@contextmanager
def unwritable_sqlite(database: Path) -> Iterator[None]:
    """Make a WAL-mode SQLite database unwritable (``chattr +i``) until the block ends."""
    files = [f for f in (database, database.with_name(database.name + "-wal")) if f.exists()]
    _chattr("+i", files)
    try:
        yield
    finally:
        _chattr("-i", files)
