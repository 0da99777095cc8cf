"""The ticket API over HTTPS (``FLEETMATCH_TLS_CERT_FILE`` / ``_KEY_FILE``): tickets, probes, SSE and
WebSocket through ``serve_matchmaker`` on the real Redis ticket store, with a throw-away CA (trustme);
plain HTTP and untrusting clients get nothing; bad settings stop ``fleetmatch matchmaker`` with one
line naming the variable, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import trustme

from fleetmatch.settings import MatchmakerSettings
from matchmaker.app import MatchmakerService, serve_matchmaker
from matchmaker.auth import mint_player_token
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_player_jwt import QUEUES, SECRET, duel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pem(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as separate PEM files (as a Kubernetes TLS Secret mounts them)."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = tmp_path / "tls.crt", tmp_path / "tls.key"
    paths[0].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(paths[1]))
    return paths


@contextlib.asynccontextmanager
async def https_matchmaker(redis_client: aioredis.Redis, pem: tuple[Path, Path]) -> AsyncIterator[MatchmakerService]:
    settings = MatchmakerSettings(port=0, token_secret=SECRET, tls_cert=pem[0], tls_key=pem[1])
    async with serve_matchmaker(
        RedisTicketStore(redis_client, block_ms=1000),
        parse_queues(QUEUES),
        settings,
        allocator_url="",
        allocator_token="",
        directors=False,
    ) as service:
        yield service


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def bearer(player: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_player_token(SECRET, player, 600, time.time())}"}


async def test_tickets_probes_and_streams_over_https(
    redis_client: aioredis.Redis, pem: tuple[Path, Path], ca: trustme.CA
) -> None:
    async with (
        https_matchmaker(redis_client, pem) as service,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(ca))) as http,
    ):
        assert service.url.startswith("https://127.0.0.1:")
        for probe in ("/healthz", "/readyz", "/livez"):
            async with http.get(service.url + probe) as resp:
                assert resp.status == 200, probe
        async with http.post(f"{service.url}/v1/tickets", json=duel("p1"), headers=bearer("p1")) as resp:
            assert resp.status == 201
            ticket: dict[str, Any] = await resp.json()
        async with http.get(f"{service.url}/v1/tickets/{ticket['id']}/events", headers=bearer("p1")) as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            async with asyncio.timeout(10):
                lines = [(await resp.content.readline()).decode() for _ in range(2)]
            assert lines[0].startswith("event: ticket") and ticket["id"] in lines[1]
        ws_url = service.url.replace("https://", "wss://") + f"/v1/tickets/{ticket['id']}/events"
        async with http.ws_connect(ws_url, headers=bearer("p1")) as ws:
            async with asyncio.timeout(10):
                first = await ws.receive_json()
            assert first["id"] == ticket["id"] and first["state"] == "queued"


async def test_plain_http_and_untrusting_clients_get_nothing(
    redis_client: aioredis.Redis, pem: tuple[Path, Path]
) -> None:
    async with https_matchmaker(redis_client, pem) as service, aiohttp.ClientSession() as http:
        plain = service.url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            async with http.post(f"{plain}/v1/tickets", json=duel("p1"), headers=bearer("p1")) as resp:
                await resp.read()
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the system CAs do not know ours
            async with http.get(f"{service.url}/healthz") as resp:
                await resp.read()


async def fleetmatch_matchmaker(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """``fleetmatch matchmaker --no-directors`` with ``env``, expected to stop at once: exit code, stderr."""
    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUES)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetmatch",
        "matchmaker",
        "--no-directors",
        "--port",
        "0",
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("FLEETMATCH_")},
            "FLEETMATCH_DATA_DIR": str(tmp_path),
            "FLEETMATCH_QUEUES": str(queues),
            "FLEETMATCH_PLAYER_TOKEN_SECRET": SECRET,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: the settings stop it first
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize(
    ("files", "said"),
    [
        pytest.param({"FLEETMATCH_TLS_CERT_FILE": "cert"}, ["FLEETMATCH_TLS_KEY_FILE is not"], id="cert-alone"),
        pytest.param({"FLEETMATCH_TLS_KEY_FILE": "key"}, ["FLEETMATCH_TLS_CERT_FILE is not"], id="key-alone"),
        pytest.param(
            {"FLEETMATCH_TLS_CERT_FILE": "missing", "FLEETMATCH_TLS_KEY_FILE": "key"},
            ["FLEETMATCH_TLS_CERT_FILE=", "missing.pem", "No such file"],
            id="no-such-file",
        ),
        pytest.param(
            {"FLEETMATCH_TLS_CERT_FILE": "cert", "FLEETMATCH_TLS_KEY_FILE": "dir"},
            ["FLEETMATCH_TLS_KEY_FILE=", "Is a directory"],
            id="a-directory",
        ),
        pytest.param(
            {"FLEETMATCH_TLS_CERT_FILE": "junk", "FLEETMATCH_TLS_KEY_FILE": "key"},
            ["FLEETMATCH_TLS_CERT_FILE=", "FLEETMATCH_TLS_KEY_FILE=", "not a PEM certificate chain"],
            id="not-pem",
        ),
        pytest.param(
            {"FLEETMATCH_TLS_CERT_FILE": "cert", "FLEETMATCH_TLS_KEY_FILE": "other-key"},
            ["FLEETMATCH_TLS_CERT_FILE=", "its matching private key"],
            id="key-of-another-certificate",
        ),
    ],
)
async def test_bad_tls_settings_stop_the_matchmaker_with_one_line(
    tmp_path: Path, pem: tuple[Path, Path], ca: trustme.CA, files: dict[str, str], said: list[str]
) -> None:
    other = tmp_path / "other.key"
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "dir").mkdir()
    where = {
        "cert": pem[0],
        "key": pem[1],
        "other-key": other,
        "junk": tmp_path / "junk.pem",
        "missing": tmp_path / "missing.pem",
        "dir": tmp_path / "dir",
    }
    code, err = await fleetmatch_matchmaker(tmp_path, {name: str(where[what]) for name, what in files.items()})
    assert code != 0
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    for text in said:
        assert text in err, err
