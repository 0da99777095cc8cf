"""``fleetmatch.http.server_tls``: the TLS context of the ticket API and the allocator (trustme's
throw-away certificates; no socket)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetmatch.errors import ConfigError
from fleetmatch.http import server_tls

NAMES = ("FLEETMATCH_TLS_CERT_FILE", "FLEETMATCH_TLS_KEY_FILE")


@pytest.fixture
def pem(tmp_path: Path) -> tuple[Path, Path]:
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def test_tls_1_2_at_least_and_no_client_certificate_asked(pem: tuple[Path, Path]) -> None:
    context = server_tls(*pem, names=NAMES)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE


def test_an_encrypted_key_is_an_error_not_a_passphrase_prompt(pem: tuple[Path, Path], tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pem[1].read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hunter2"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted"):
        server_tls(pem[0], encrypted, names=NAMES)


def test_swapped_files_name_both_settings(pem: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match=r"FLEETMATCH_TLS_CERT_FILE=.* / FLEETMATCH_TLS_KEY_FILE=.*not a PEM"):
        server_tls(pem[1], pem[0], names=NAMES)
