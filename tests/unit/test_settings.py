"""Settings from the environment: defaults, overrides, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmatch.errors import ConfigError
from fleetmatch.settings import Settings


def test_defaults() -> None:
    s = Settings.from_env({"HOME": "/home/u"})
    assert s.redis.url is None
    assert (s.node.port_min, s.node.port_max) == (7000, 8000)
    assert s.data_dir == Path("/home/u/.local/share/fleetmatch")
    assert s.node.sdk_host == "127.0.0.1"
    assert s.metrics_host == "127.0.0.1"  # loopback unless told (a pod sets 0.0.0.0)
    node = s.node
    assert (node.max_log_bytes, node.log_generations, node.max_log_files) == (10 * 1024 * 1024, 3, 100)
    assert node.max_log_age == 7 * 24 * 3600
    assert s.kube.list_page == 500


def test_overrides() -> None:
    s = Settings.from_env(
        {
            "REDIS_URL": "redis://r:6379/1",
            "FLEETMATCH_PORT_RANGE": "9000-9010",
            "FLEETMATCH_NODE_NAME": "node-7",
            "FLEETMATCH_DATA_DIR": "/tmp/fm",
            "FLEETMATCH_SDK_WRITE_INTERVAL": "0.5",
            "FLEETMATCH_METRICS_HOST": "0.0.0.0",
            "FLEETMATCH_LOG_GENERATIONS": "0",
            "FLEETMATCH_MAX_LOG_AGE_SECONDS": "3600",
            "FLEETMATCH_KUBE_LIST_PAGE": "50",
        }
    )
    assert s.kube.list_page == 50
    assert (s.node.log_generations, s.node.max_log_age) == (0, 3600.0)
    assert s.metrics_host == "0.0.0.0"
    assert s.redis.url == "redis://r:6379/1"
    assert (s.node.port_min, s.node.port_max, s.node.name) == (9000, 9010, "node-7")
    assert s.data_dir == Path("/tmp/fm") and s.sdk.write_interval == 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLEETMATCH_PORT_RANGE", "8000"),
        ("FLEETMATCH_PORT_RANGE", "9000-8000"),
        ("FLEETMATCH_METRICS_PORT", "70000"),
        ("FLEETMATCH_MAX_SERVERS", "0"),
        ("FLEETMATCH_LOG_FORMAT", "xml"),
        ("FLEETMATCH_NODE_NAME", "Bad_Name"),
        ("FLEETMATCH_NAMESPACE", "UPPER"),
        ("FLEETMATCH_LOG_GENERATIONS", "-1"),
        ("FLEETMATCH_MAX_LOG_AGE_SECONDS", "0"),
        ("FLEETMATCH_MAX_LOG_BYTES", "lots"),
        ("FLEETMATCH_KUBE_LIST_PAGE", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value) or value in str(info.value)


def test_the_player_token_audience() -> None:
    assert Settings.from_env({}).matchmaker.player_token_audience == "fleetmatch"
    env = {"FLEETMATCH_PLAYER_TOKEN_AUDIENCE": " https://mm.example.com "}
    assert Settings.from_env(env).matchmaker.player_token_audience == "https://mm.example.com"
    with pytest.raises(ConfigError, match="FLEETMATCH_PLAYER_TOKEN_AUDIENCE"):
        Settings.from_env({"FLEETMATCH_PLAYER_TOKEN_AUDIENCE": "tab\there"})


@pytest.fixture
def pem_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    return cert, key


def test_the_ticket_api_tls_files(pem_files: tuple[Path, Path]) -> None:
    assert (Settings.from_env({}).matchmaker.tls_cert, Settings.from_env({}).matchmaker.tls_key) == (None, None)
    env = {"FLEETMATCH_TLS_CERT_FILE": str(pem_files[0]), "FLEETMATCH_TLS_KEY_FILE": str(pem_files[1])}
    mm = Settings.from_env(env).matchmaker
    assert (mm.tls_cert, mm.tls_key) == pem_files


@pytest.mark.parametrize(
    ("given", "missing"),
    [("FLEETMATCH_TLS_CERT_FILE", "FLEETMATCH_TLS_KEY_FILE"), ("FLEETMATCH_TLS_KEY_FILE", "FLEETMATCH_TLS_CERT_FILE")],
)
def test_one_tls_file_alone_names_the_missing_variable(pem_files: tuple[Path, Path], given: str, missing: str) -> None:
    with pytest.raises(ConfigError, match=f"{given} is set but {missing} is not"):
        Settings.from_env({given: str(pem_files[0])})


@pytest.mark.parametrize(
    ("path", "reason"),
    [("missing.pem", "No such file or directory"), (".", "Is a directory")],
)
def test_an_unreadable_tls_file_names_the_variable_and_the_path(tmp_path: Path, path: str, reason: str) -> None:
    bad = tmp_path / path
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"FLEETMATCH_TLS_KEY_FILE": str(bad), "FLEETMATCH_TLS_CERT_FILE": str(bad)})
    assert str(info.value).startswith("FLEETMATCH_TLS_CERT_FILE=") and str(bad) in str(info.value)
    assert reason in str(info.value)
