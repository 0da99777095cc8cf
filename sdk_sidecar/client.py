"""The Python SDK for game servers: Agones' REST SDK, async and typed.

    async with SDK() as sdk:                  # port: AGONES_SDK_HTTP_PORT, else 9358
        await sdk.connect()                   # waits for a sidecar that starts late
        health = asyncio.create_task(sdk.health_loop())
        await sdk.ready()
        async for gs in sdk.watch_gameserver():
            if gs.state == "Allocated": ...

It speaks plain HTTP/JSON, so it works against fleetmatch's sidecar and Agones' alike. Every failure
is an ``SdkError``: ``status`` is the HTTP status (0 when the sidecar could not be reached), ``code``
the gRPC code the sidecar reported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 9358
PORT_ENV = "AGONES_SDK_HTTP_PORT"
_UNAVAILABLE = 14
_UNKNOWN = 2


class SdkError(Exception):
    """An SDK call failed: the sidecar refused it (``status`` >= 400) or could not be reached (0)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{message} (HTTP {status}, code {code})" if status else message)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str_map(value: Any) -> Mapping[str, str]:
    items = value if isinstance(value, Mapping) else {}
    return MappingProxyType({str(k): str(v) for k, v in items.items()})


@dataclass(frozen=True)
class GameServerInfo:
    """What the SDK tells a game server about itself (``raw`` is the whole JSON document)."""

    name: str
    namespace: str
    uid: str
    state: str
    address: str
    ports: Mapping[str, int]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    health_disabled: bool
    health_period_seconds: int
    raw: Mapping[str, Any]

    @property
    def resource_version(self) -> str:
        return str(self.raw.get("object_meta", {}).get("resource_version", ""))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GameServerInfo:
        """From the SDK's GameServer JSON; missing parts read as empty (older or other sidecars)."""
        meta = doc.get("object_meta") or {}
        health = (doc.get("spec") or {}).get("health") or {}
        status = doc.get("status") or {}
        ports = {
            str(p.get("name", "")): _int(p.get("port")) for p in status.get("ports") or () if isinstance(p, Mapping)
        }
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            state=str(status.get("state", "")),
            address=str(status.get("address", "")),
            ports=MappingProxyType(ports),
            labels=_str_map(meta.get("labels")),
            annotations=_str_map(meta.get("annotations")),
            health_disabled=bool(health.get("disabled", False)),
            health_period_seconds=_int(health.get("period_seconds"), 5),
            raw=MappingProxyType(dict(doc)),
        )


class SDK:
    """Client of the SDK sidecar's REST API."""

    def __init__(self, *, host: str = "localhost", port: int | None = None, timeout: float = 10.0) -> None:
        if port is None:
            port = _int(os.environ.get(PORT_ENV), DEFAULT_HTTP_PORT) or DEFAULT_HTTP_PORT
        # The sidecar binds 127.0.0.1; "localhost" may resolve to ::1 first and be refused.
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.timeout = timeout
        self._base = f"http://{self.host}:{port}"
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SDK:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._http

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            async with self._session().request(method, self._base + path, json=body) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SdkError(0, _UNAVAILABLE, f"SDK sidecar at {self._base} unreachable: {exc!r}") from exc
        try:
            return json.loads(text) if text else {}
        except ValueError:
            raise SdkError(resp.status, _UNKNOWN, f"SDK sidecar answered non-JSON: {text[:200]!r}") from None

    async def connect(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - the SDK's published signature
        """Wait until the sidecar answers (it may start after the game); ``SdkError`` after ``timeout``."""
        delay = 0.05
        last: SdkError | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await self._call("GET", "/gameserver")
                        return
                    except SdkError as exc:
                        if 400 <= exc.status < 500:
                            raise
                        last = exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        except TimeoutError:
            raise SdkError(0, _UNAVAILABLE, f"no SDK sidecar at {self._base} after {timeout}s: {last}") from None

    async def ready(self) -> None:
        await self._call("POST", "/ready", {})

    async def allocate(self) -> None:
        await self._call("POST", "/allocate", {})

    async def shutdown(self) -> None:
        await self._call("POST", "/shutdown", {})

    async def health(self) -> None:
        """One health ping; send them more often than ``spec.health.periodSeconds``."""
        await self._call("POST", "/health", {})

    async def reserve(self, seconds: int) -> None:
        """Reserved for ``seconds``, then back to Ready; 0 reserves until told otherwise."""
        await self._call("POST", "/reserve", {"seconds": str(seconds)})

    async def set_label(self, key: str, value: str) -> None:
        """Label ``agones.dev/sdk-<key>`` on this GameServer."""
        await self._call("PUT", "/metadata/label", {"key": key, "value": value})

    async def set_annotation(self, key: str, value: str) -> None:
        """Annotation ``agones.dev/sdk-<key>`` on this GameServer."""
        await self._call("PUT", "/metadata/annotation", {"key": key, "value": value})

    async def get_gameserver(self) -> GameServerInfo:
        doc = await self._call("GET", "/gameserver")
        if not isinstance(doc, Mapping):
            raise SdkError(200, _UNKNOWN, f"SDK sidecar answered {type(doc).__name__}, not a GameServer")
        return GameServerInfo.from_json(doc)

    async def watch_gameserver(self) -> AsyncGenerator[GameServerInfo, None]:
        """The current GameServer, then every change; reconnects when the stream drops.

        After a reconnect the current state comes again unless nothing changed meanwhile (same
        resource version), so no update is lost and none is repeated. ``SdkError`` for a 4xx answer.
        Stop early with ``contextlib.aclosing(sdk.watch_gameserver())`` to release the connection at once.
        """
        last_version: str | None = None
        delay = 0.05
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        while True:
            try:
                async with self._session().get(self._base + "/watch/gameserver", timeout=timeout) as resp:
                    if 400 <= resp.status < 500:
                        raise _error(resp.status, await resp.text())
                    if resp.status >= 500:
                        log.debug("SDK watch refused (HTTP %d); retrying in %.2fs", resp.status, delay)
                    else:
                        async for info in _watch_items(resp):
                            if info.resource_version != last_version:
                                last_version = info.resource_version
                                delay = 0.05
                                yield info
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("SDK watch stream dropped (%r); reconnecting in %.2fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def health_loop(self, interval: float | None = None) -> None:
        """Ping until cancelled, every ``interval`` s (default: half of ``spec.health.periodSeconds``,
        at least 0.2 s); errors are logged and the loop goes on (the sidecar may restart)."""
        period = interval
        while True:
            if period is None:
                try:
                    info = await self.get_gameserver()
                    period = max(0.2, info.health_period_seconds / 2)
                except SdkError as exc:
                    log.debug("health loop: cannot read spec.health yet (%s)", exc)
            try:
                await self.health()
            except SdkError as exc:
                log.warning("health ping failed: %s", exc)
            await asyncio.sleep(period if period is not None else 0.2)


def _error(status: int, text: str) -> SdkError:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        return SdkError(status, _int(doc.get("code"), _UNKNOWN), str(doc.get("message", text)))
    return SdkError(status, _UNKNOWN, text.strip() or f"HTTP {status}")


async def _watch_items(resp: aiohttp.ClientResponse) -> AsyncIterator[GameServerInfo]:
    """The GameServers of a watch stream, one JSON document per line (lines of any length)."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            info = _watch_item(line)
            if info is not None:
                yield info


def _watch_item(line: bytes) -> GameServerInfo | None:
    line = line.strip()
    if not line:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        log.warning("SDK watch: skipping a non-JSON line %r", line[:200])
        return None
    if not isinstance(doc, Mapping):
        return None
    if "error" in doc and isinstance(doc["error"], Mapping):
        err = doc["error"]
        raise SdkError(200, _int(err.get("code"), _UNKNOWN), str(err.get("message", "")))
    result = doc.get("result")
    return GameServerInfo.from_json(result) if isinstance(result, Mapping) else None
