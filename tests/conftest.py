from __future__ import annotations

import logging
import subprocess

import pytest

from service.logs import logger
from tests.fakes.logs import LogLines


@pytest.fixture(autouse=True)
def _forget_log_catchers():
    """Each test catches only its own log events."""
    yield
    for handler in [h for h in logger.handlers if isinstance(h, LogLines)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl tool:
    TLS servers in the tests (SMTP, IMAP) present it."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key
