"""A throw-away certificate for ``localhost``, made with the ``openssl`` CLI when a test runs.

No key is kept in the repository: each test makes its own (about 50 ms). Tests
that need it are skipped where no ``openssl`` binary exists.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class LocalhostCertificate:
    """A self-signed certificate valid for the name ``localhost`` only (no IP address)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """Return a server-side TLS context presenting this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def localhost_certificate(folder: Path) -> LocalhostCertificate:
    """Make the certificate in ``folder``; skip the test when ``openssl`` is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is needed to make a test certificate")
    cert, key = folder / "localhost.pem", folder / "localhost.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return LocalhostCertificate(cert=cert, key=key)
