"""The Python SDK for game servers: Agones' SDK, async and typed, over REST or gRPC.

    async with SDK() as sdk:                  # AGONES_SDK_HTTP_PORT (else 9358) / AGONES_SDK_GRPC_PORT
        await sdk.connect()                   # waits for a sidecar that starts late
        health = asyncio.create_task(sdk.health_loop())
        await sdk.ready()
        rooms = await sdk.increment_counter("rooms")          # CounterInfo(name, count, capacity)
        await sdk.player_connect("p1")                        # alpha player tracking
        async for gs in sdk.watch_gameserver():
            if gs.state == "Allocated": ...

Two transports speak the same calls. REST (``transport="http"``: plain HTTP/JSON, the paths of
https://agones.dev/site/docs/guides/client-sdks/rest/) works against fleetmatch's sidecar and Agones'
alike. gRPC (``transport="grpc"``: the services ``agones.dev.sdk.SDK``, ``.alpha.SDK``, ``.beta.SDK``,
with health pings on one client stream) needs ``grpcio`` and fleetmatch's generated stubs
(``sdk_sidecar.grpc_gen``). ``transport="auto"`` (the default) uses gRPC when those import, no HTTP
``port`` was given and ``AGONES_SDK_GRPC_PORT`` is set (the node agent sets it), else REST;
``connect()`` then settles on whichever of the two answers, so a sidecar without gRPC still works.
Both transports exchange the gateway's JSON documents (proto field names, int64 as strings), so every
answer is parsed by the same code.

Every failure is an ``SdkError``: ``status`` is the HTTP status (for gRPC, the status the gateway
would have answered), 0 when the sidecar could not be reached; ``code`` the gRPC code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

import aiohttp

from sdk_sidecar.codes import GrpcCode, http_status

if TYPE_CHECKING:
    import grpc.aio

log = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 9358
DEFAULT_GRPC_PORT = 9357
PORT_ENV = "AGONES_SDK_HTTP_PORT"
GRPC_PORT_ENV = "AGONES_SDK_GRPC_PORT"
DEFAULT_HEALTH_PERIOD = 5
"""Agones' ``spec.health.periodSeconds`` default, seconds."""
_UNAVAILABLE = int(GrpcCode.UNAVAILABLE)
_UNKNOWN = int(GrpcCode.UNKNOWN)

Transport = Literal["auto", "http", "grpc"]
Json = Mapping[str, Any]


class SdkError(Exception):
    """An SDK call failed: the sidecar refused it (``status`` >= 400) or could not be reached (0)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{message} (HTTP {status}, code {code})" if status else message)


def _int(value: Any, default: int = 0) -> int:
    """An int64 as the gateway sends it (a JSON string) or as a number; ``default`` if neither."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str_map(value: Any) -> Mapping[str, str]:
    items = value if isinstance(value, Mapping) else {}
    return MappingProxyType({str(k): str(v) for k, v in items.items()})


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _doc(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


# -- typed answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterInfo:
    """A counter (Agones CountsAndLists, beta): ``count`` within ``[0, capacity]``."""

    name: str
    count: int
    capacity: int

    @classmethod
    def from_json(cls, doc: Json, name: str = "") -> CounterInfo:
        return cls(str(doc.get("name") or name), _int(doc.get("count")), _int(doc.get("capacity")))


@dataclass(frozen=True)
class ListInfo:
    """A list of distinct strings with a capacity (Agones CountsAndLists, beta)."""

    name: str
    capacity: int
    values: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: Json, name: str = "") -> ListInfo:
        return cls(str(doc.get("name") or name), _int(doc.get("capacity")), _strings(doc.get("values")))

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class PlayersInfo:
    """Player tracking (Agones alpha): connected ids and the capacity the game set."""

    count: int
    capacity: int
    ids: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: Json) -> PlayersInfo:
        return cls(_int(doc.get("count")), _int(doc.get("capacity")), _strings(doc.get("ids")))


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
    creation_timestamp: int = 0
    """Epoch seconds."""
    counters: Mapping[str, CounterInfo] = field(default_factory=lambda: MappingProxyType({}))
    lists: Mapping[str, ListInfo] = field(default_factory=lambda: MappingProxyType({}))
    players: PlayersInfo | None = None
    """None unless player tracking is on (the sidecar sends ``null``)."""

    @property
    def resource_version(self) -> str:
        return str(self.raw.get("object_meta", {}).get("resource_version", ""))

    @property
    def generation(self) -> int:
        return _int(self.raw.get("object_meta", {}).get("generation"))

    @classmethod
    def from_json(cls, doc: Json) -> GameServerInfo:
        """From the SDK's GameServer JSON; missing parts read as empty (older or other sidecars)."""
        meta = _doc(doc.get("object_meta"))
        health = _doc(_doc(doc.get("spec")).get("health"))
        status = _doc(doc.get("status"))
        ports = {
            str(p.get("name", "")): _int(p.get("port")) for p in status.get("ports") or () if isinstance(p, Mapping)
        }
        counters = {str(k): CounterInfo.from_json(_doc(v), str(k)) for k, v in _doc(status.get("counters")).items()}
        lists = {str(k): ListInfo.from_json(_doc(v), str(k)) for k, v in _doc(status.get("lists")).items()}
        players = status.get("players")
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
            health_period_seconds=_int(health.get("period_seconds"), DEFAULT_HEALTH_PERIOD),
            raw=MappingProxyType(dict(doc)),
            creation_timestamp=_int(meta.get("creation_timestamp")),
            counters=MappingProxyType(counters),
            lists=MappingProxyType(lists),
            players=PlayersInfo.from_json(players) if isinstance(players, Mapping) else None,
        )


# -- transports ------------------------------------------------------------------------------------


class SdkTransport(Protocol):
    """How calls reach the sidecar. Requests and answers are the gateway's JSON documents of the
    gRPC messages (proto field names, int64 as strings); ``rpc`` is the gRPC method name."""

    name: str

    async def unary(self, rpc: str, request: Json) -> Json: ...

    async def health(self) -> None:
        """One health ping."""

    def watch(self) -> AsyncGenerator[Json, None]:
        """One WatchGameServer stream: GameServer documents until it ends (raises ``SdkError``)."""
        ...

    async def close(self) -> None: ...


def _route(rpc: str, request: Json) -> tuple[str, str, Json | None, dict[str, str]]:
    """(HTTP method, path, JSON body, query) of one call on Agones' REST gateway."""
    simple = {
        "Ready": ("POST", "/ready"),
        "Allocate": ("POST", "/allocate"),
        "Shutdown": ("POST", "/shutdown"),
        "Reserve": ("POST", "/reserve"),
        "SetLabel": ("PUT", "/metadata/label"),
        "SetAnnotation": ("PUT", "/metadata/annotation"),
        "PlayerConnect": ("POST", "/alpha/player/connect"),
        "PlayerDisconnect": ("POST", "/alpha/player/disconnect"),
        "SetPlayerCapacity": ("PUT", "/alpha/player/capacity"),
    }
    gets = {
        "GetGameServer": "/gameserver",
        "GetPlayerCapacity": "/alpha/player/capacity",
        "GetPlayerCount": "/alpha/player/count",
        "GetConnectedPlayers": "/alpha/player/connected",
    }
    if rpc in simple:
        method, path = simple[rpc]
        return method, path, request, {}
    if rpc in gets:
        return "GET", gets[rpc], None, {}
    if rpc == "IsPlayerConnected":
        return "GET", "/alpha/player/connected/" + quote(str(request.get("playerID", "")), safe=""), None, {}
    if rpc in ("GetCounter", "GetList"):
        kind = "counters" if rpc == "GetCounter" else "lists"
        return "GET", f"/v1beta1/{kind}/{quote(str(request.get('name', '')), safe='')}", None, {}
    if rpc == "UpdateCounter":
        body = dict(_doc(request.get("counterUpdateRequest")))
        return "PATCH", f"/v1beta1/counters/{quote(str(body.pop('name', '')), safe='')}", body, {}
    if rpc == "UpdateList":
        body = dict(_doc(request.get("list")))
        mask = str(request.get("update_mask", ""))
        return "PATCH", f"/v1beta1/lists/{quote(str(body.pop('name', '')), safe='')}", body, {"update_mask": mask}
    if rpc in ("AddListValue", "RemoveListValue"):
        suffix = ":addValue" if rpc == "AddListValue" else ":removeValue"
        path = f"/v1beta1/lists/{quote(str(request.get('name', '')), safe='')}{suffix}"
        return "POST", path, {"value": request.get("value", "")}, {}
    raise ValueError(f"unknown SDK call {rpc!r}")


class HttpTransport:
    """The REST SDK (grpc-gateway JSON) over one aiohttp session."""

    name = "http"

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.base = f"http://{host}:{port}"
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    async def request(
        self, method: str, path: str, body: Json | None = None, params: Mapping[str, str] | None = None
    ) -> Any:
        try:
            async with self._session().request(
                method, self.base + path, json=body, params={k: v for k, v in (params or {}).items() if v}
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SdkError(0, _UNAVAILABLE, f"SDK sidecar at {self.base} unreachable: {exc!r}") from exc
        try:
            return json.loads(text) if text else {}
        except ValueError:
            raise SdkError(resp.status, _UNKNOWN, f"SDK sidecar answered non-JSON: {text[:200]!r}") from None

    async def unary(self, rpc: str, request: Json) -> Json:
        method, path, body, params = _route(rpc, request)
        doc = await self.request(method, path, body, params)
        if not isinstance(doc, Mapping):
            raise SdkError(200, _UNKNOWN, f"SDK sidecar answered {type(doc).__name__} to {rpc}, not an object")
        return doc

    async def health(self) -> None:
        await self.request("POST", "/health", {})

    async def watch(self) -> AsyncGenerator[Json, None]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        try:
            async with self._session().get(self.base + "/watch/gameserver", timeout=timeout) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.text())
                async for doc in _watch_items(resp):
                    yield doc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SdkError(0, _UNAVAILABLE, f"SDK watch stream at {self.base} dropped: {exc!r}") from exc


def grpc_available() -> bool:
    """True if ``grpcio``, ``protobuf`` and the generated stubs ``sdk_sidecar.grpc_gen`` import."""
    try:
        _grpc_modules()
    except ImportError:
        return False
    return True


def _grpc_modules() -> Any:
    import grpc.aio
    from google.protobuf import json_format

    import sdk_sidecar.grpc_gen.alpha_pb2_grpc as alpha_pb2_grpc
    import sdk_sidecar.grpc_gen.beta_pb2_grpc as beta_pb2_grpc
    import sdk_sidecar.grpc_gen.sdk_pb2_grpc as sdk_pb2_grpc

    return grpc.aio, json_format, alpha_pb2_grpc, beta_pb2_grpc, sdk_pb2_grpc


class GrpcTransport:
    """The gRPC SDK: the three services on one ``grpc.aio`` channel; health pings on one client stream."""

    name = "grpc"

    def __init__(self, host: str, port: int, timeout: float) -> None:
        import grpc.aio
        from google.protobuf import json_format

        import sdk_sidecar.grpc_gen.alpha_pb2 as alpha_pb2
        import sdk_sidecar.grpc_gen.alpha_pb2_grpc as alpha_pb2_grpc
        import sdk_sidecar.grpc_gen.beta_pb2 as beta_pb2
        import sdk_sidecar.grpc_gen.beta_pb2_grpc as beta_pb2_grpc
        import sdk_sidecar.grpc_gen.sdk_pb2 as sdk_pb2
        import sdk_sidecar.grpc_gen.sdk_pb2_grpc as sdk_pb2_grpc

        self.target = f"{host}:{port}"
        self.timeout = timeout
        self._grpc = grpc
        self._json = json_format
        self._empty = sdk_pb2.Empty
        self._modules = (sdk_pb2, sdk_pb2_grpc, alpha_pb2, alpha_pb2_grpc, beta_pb2, beta_pb2_grpc)
        # Made on first use, inside the event loop that uses them.
        self._channel: grpc.aio.Channel | None = None
        self._sdk: Any = None
        self._calls: dict[str, tuple[Any, Any]] = {}
        """rpc -> (bound stub method, request message type)"""
        self._health_call: grpc.aio.StreamUnaryCall[Any, Any] | None = None

    def _open(self) -> None:
        if self._channel is not None:
            return
        sdk_pb2, sdk_pb2_grpc, alpha_pb2, alpha_pb2_grpc, beta_pb2, beta_pb2_grpc = self._modules
        self._channel = channel = self._grpc.aio.insecure_channel(self.target)
        sdk = self._sdk = sdk_pb2_grpc.SDKStub(channel)
        alpha = alpha_pb2_grpc.SDKStub(channel)
        beta = beta_pb2_grpc.SDKStub(channel)
        self._calls = {
            "Ready": (sdk.Ready, sdk_pb2.Empty),
            "Allocate": (sdk.Allocate, sdk_pb2.Empty),
            "Shutdown": (sdk.Shutdown, sdk_pb2.Empty),
            "Reserve": (sdk.Reserve, sdk_pb2.Duration),
            "GetGameServer": (sdk.GetGameServer, sdk_pb2.Empty),
            "SetLabel": (sdk.SetLabel, sdk_pb2.KeyValue),
            "SetAnnotation": (sdk.SetAnnotation, sdk_pb2.KeyValue),
            "PlayerConnect": (alpha.PlayerConnect, alpha_pb2.PlayerID),
            "PlayerDisconnect": (alpha.PlayerDisconnect, alpha_pb2.PlayerID),
            "SetPlayerCapacity": (alpha.SetPlayerCapacity, alpha_pb2.Count),
            "GetPlayerCapacity": (alpha.GetPlayerCapacity, alpha_pb2.Empty),
            "GetPlayerCount": (alpha.GetPlayerCount, alpha_pb2.Empty),
            "IsPlayerConnected": (alpha.IsPlayerConnected, alpha_pb2.PlayerID),
            "GetConnectedPlayers": (alpha.GetConnectedPlayers, alpha_pb2.Empty),
            "GetCounter": (beta.GetCounter, beta_pb2.GetCounterRequest),
            "UpdateCounter": (beta.UpdateCounter, beta_pb2.UpdateCounterRequest),
            "GetList": (beta.GetList, beta_pb2.GetListRequest),
            "UpdateList": (beta.UpdateList, beta_pb2.UpdateListRequest),
            "AddListValue": (beta.AddListValue, beta_pb2.AddListValueRequest),
            "RemoveListValue": (beta.RemoveListValue, beta_pb2.RemoveListValueRequest),
        }

    def _doc(self, message: Any) -> Json:
        doc: dict[str, Any] = self._json.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        return doc

    def _error(self, exc: grpc.aio.AioRpcError) -> SdkError:
        code = int(exc.code().value[0])
        # UNAVAILABLE is "not reached" (status 0), as a refused REST connection is; else the gateway's status.
        status = 0 if code == GrpcCode.UNAVAILABLE else http_status(code)
        return SdkError(status, code, exc.details() or exc.code().name)

    async def unary(self, rpc: str, request: Json) -> Json:
        self._open()
        try:
            method, kind = self._calls[rpc]
        except KeyError:
            raise ValueError(f"unknown SDK call {rpc!r}") from None
        message = self._json.ParseDict(dict(request), kind(), ignore_unknown_fields=True)
        try:
            answer = await method(message, timeout=self.timeout)
        except self._grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        return self._doc(answer)

    async def health(self) -> None:
        """One message on the Health client stream (opened on first use, reopened after a failure)."""
        self._open()
        call = self._health_call
        if call is None or call.done():
            call = self._health_call = self._sdk.Health()
        try:
            await call.write(self._empty())
        except self._grpc.aio.AioRpcError as exc:
            self._health_call = None
            raise self._error(exc) from None
        except asyncio.InvalidStateError:
            self._health_call = None
            raise SdkError(0, _UNAVAILABLE, f"SDK health stream to {self.target} ended") from None

    async def watch(self) -> AsyncGenerator[Json, None]:
        self._open()
        call = self._sdk.WatchGameServer(self._empty())
        try:
            async for message in call:
                yield self._doc(message)
        except self._grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        call, self._health_call = self._health_call, None
        if call is not None and not call.done():
            with contextlib.suppress(self._grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError):
                await call.done_writing()
                async with asyncio.timeout(self.timeout):
                    await call  # the sidecar answers Empty on half-close
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()


# -- the SDK ---------------------------------------------------------------------------------------


class SDK:
    """Client of a game server's SDK sidecar (see the module documentation)."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int | None = None,
        timeout: float = 10.0,
        grpc_port: int | None = None,
        transport: Transport = "auto",
    ) -> None:
        explicit_http = port is not None
        if port is None:
            port = _int(os.environ.get(PORT_ENV), DEFAULT_HTTP_PORT) or DEFAULT_HTTP_PORT
        env_grpc = _int(os.environ.get(GRPC_PORT_ENV), 0)
        # The sidecar binds 127.0.0.1; "localhost" may resolve to ::1 first and be refused.
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.grpc_port = grpc_port or env_grpc or DEFAULT_GRPC_PORT
        self.timeout = timeout
        self._base = f"http://{self.host}:{port}"
        self._http = HttpTransport(self.host, port, timeout)
        self._grpc: GrpcTransport | None = None
        self._fallback: HttpTransport | None = None
        if transport == "grpc" or (
            transport == "auto" and not explicit_http and (grpc_port or env_grpc) and grpc_available()
        ):
            self._grpc = GrpcTransport(self.host, self.grpc_port, timeout)
            self._fallback = self._http if transport == "auto" else None
        self._transport: SdkTransport = self._grpc if self._grpc is not None else self._http

    @property
    def transport(self) -> str:
        """``"http"`` or ``"grpc"``: how calls go now (``auto`` may switch to http in ``connect``)."""
        return self._transport.name

    async def __aenter__(self) -> SDK:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close connections (a gRPC health stream is half-closed first). Idempotent."""
        try:
            if self._grpc is not None:
                await self._grpc.close()
        finally:
            await self._http.close()

    async def _call(self, rpc: str, request: Json | None = None) -> Json:
        return await self._transport.unary(rpc, request or {})

    async def connect(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - the SDK's published signature
        """Wait until the sidecar answers (it may start after the game); ``SdkError`` after ``timeout``.

        With ``transport="auto"`` and gRPC chosen, a sidecar that answers REST only is used over REST.
        """
        candidates: list[SdkTransport] = [self._transport]
        if self._fallback is not None and self._fallback is not self._transport:
            candidates.append(self._fallback)
        delay = 0.05
        last: SdkError | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for candidate in candidates:
                        try:
                            await candidate.unary("GetGameServer", {})
                        except SdkError as exc:
                            if 400 <= exc.status < 500:
                                raise
                            last = exc
                            continue
                        if candidate is not self._transport:
                            log.info("SDK: no gRPC sidecar at %s; using REST at %s", self.grpc_port, self._base)
                            self._transport = candidate
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        except TimeoutError:
            raise SdkError(0, _UNAVAILABLE, f"no SDK sidecar at {self._where()} after {timeout}s: {last}") from None

    def _where(self) -> str:
        return f"{self.host}:{self.grpc_port} (gRPC)" if self._transport is self._grpc else self._base

    # -- agones.dev.sdk.SDK -----------------------------------------------------------------------

    async def ready(self) -> None:
        await self._call("Ready")

    async def allocate(self) -> None:
        await self._call("Allocate")

    async def shutdown(self) -> None:
        await self._call("Shutdown")

    async def health(self) -> None:
        """One health ping; send them more often than ``spec.health.periodSeconds``."""
        await self._transport.health()

    async def reserve(self, seconds: int) -> None:
        """Reserved for ``seconds``, then back to Ready; 0 reserves until told otherwise."""
        await self._call("Reserve", {"seconds": str(seconds)})

    async def set_label(self, key: str, value: str) -> None:
        """Label ``agones.dev/sdk-<key>`` on this GameServer."""
        await self._call("SetLabel", {"key": key, "value": value})

    async def set_annotation(self, key: str, value: str) -> None:
        """Annotation ``agones.dev/sdk-<key>`` on this GameServer."""
        await self._call("SetAnnotation", {"key": key, "value": value})

    async def get_gameserver(self) -> GameServerInfo:
        return GameServerInfo.from_json(await self._call("GetGameServer"))

    async def watch_gameserver(self) -> AsyncGenerator[GameServerInfo, None]:
        """The current GameServer, then every change; reconnects when the stream drops.

        After a reconnect the current state comes again unless nothing changed meanwhile (same
        resource version), so no update is lost and none is repeated. ``SdkError`` for a 4xx answer.
        Stop early with ``contextlib.aclosing(sdk.watch_gameserver())`` to release the connection at once.
        """
        last_version: str | None = None
        delay = 0.05
        while True:
            try:
                async with contextlib.aclosing(self._transport.watch()) as docs:
                    async for doc in docs:
                        info = GameServerInfo.from_json(doc)
                        if info.resource_version != last_version:
                            last_version = info.resource_version
                            delay = 0.05
                            yield info
            except SdkError as exc:
                if 0 < exc.status < 500:
                    raise  # refused (or an error inside the stream): retrying would not help
                log.debug("SDK watch stream dropped (%s); reconnecting in %.2fs", exc, delay)
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
                    # 0 when health checking is disabled: Agones' default period then.
                    period = max(0.2, (info.health_period_seconds or DEFAULT_HEALTH_PERIOD) / 2)
                except SdkError as exc:
                    log.debug("health loop: cannot read spec.health yet (%s)", exc)
            try:
                await self.health()
            except SdkError as exc:
                log.warning("health ping failed: %s", exc)
            await asyncio.sleep(period if period is not None else 0.2)

    # -- agones.dev.sdk.beta.SDK: counters and lists ----------------------------------------------

    async def get_counter(self, name: str) -> CounterInfo:
        """The counter ``name`` (declared in the GameServer spec; an unknown one is an ``SdkError``)."""
        return CounterInfo.from_json(await self._call("GetCounter", {"name": name}), name)

    async def update_counter(
        self, name: str, *, count: int | None = None, capacity: int | None = None, count_diff: int = 0
    ) -> CounterInfo:
        """Set ``count`` and/or ``capacity``, and/or add ``count_diff``; the counter afterwards."""
        update: dict[str, Any] = {"name": name}
        if count is not None:
            update["count"] = str(count)
        if capacity is not None:
            update["capacity"] = str(capacity)
        if count_diff:
            update["countDiff"] = str(count_diff)
        doc = await self._call("UpdateCounter", {"counterUpdateRequest": update})
        return CounterInfo.from_json(doc, name)

    async def increment_counter(self, name: str, amount: int = 1) -> CounterInfo:
        return await self.update_counter(name, count_diff=amount)

    async def decrement_counter(self, name: str, amount: int = 1) -> CounterInfo:
        return await self.update_counter(name, count_diff=-amount)

    async def set_counter_count(self, name: str, count: int) -> CounterInfo:
        return await self.update_counter(name, count=count)

    async def set_counter_capacity(self, name: str, capacity: int) -> CounterInfo:
        return await self.update_counter(name, capacity=capacity)

    async def get_list(self, name: str) -> ListInfo:
        return ListInfo.from_json(await self._call("GetList", {"name": name}), name)

    async def update_list(
        self, name: str, *, capacity: int | None = None, values: Sequence[str] | None = None
    ) -> ListInfo:
        """Replace the list's ``capacity`` and/or ``values`` (only those given); the list afterwards."""
        body: dict[str, Any] = {"name": name}
        mask = []
        if capacity is not None:
            body["capacity"] = str(capacity)
            mask.append("capacity")
        if values is not None:
            body["values"] = list(values)
            mask.append("values")
        doc = await self._call("UpdateList", {"list": body, "update_mask": ",".join(mask)})
        return ListInfo.from_json(doc, name)

    async def set_list_capacity(self, name: str, capacity: int) -> ListInfo:
        return await self.update_list(name, capacity=capacity)

    async def add_list_value(self, name: str, value: str) -> ListInfo:
        """Append ``value``; ``SdkError`` if it is already there or the list is full."""
        return ListInfo.from_json(await self._call("AddListValue", {"name": name, "value": value}), name)

    async def remove_list_value(self, name: str, value: str) -> ListInfo:
        """Remove ``value``; ``SdkError`` if it is not there."""
        return ListInfo.from_json(await self._call("RemoveListValue", {"name": name, "value": value}), name)

    async def list_contains(self, name: str, value: str) -> bool:
        return value in await self.get_list(name)

    # -- agones.dev.sdk.alpha.SDK: player tracking ------------------------------------------------

    async def player_connect(self, player_id: str) -> bool:
        """Record a connected player: True, or False if already connected; ``SdkError`` when full."""
        return bool((await self._call("PlayerConnect", {"playerID": player_id})).get("bool", False))

    async def player_disconnect(self, player_id: str) -> bool:
        """Forget a player: True, or False if it was not connected."""
        return bool((await self._call("PlayerDisconnect", {"playerID": player_id})).get("bool", False))

    async def set_player_capacity(self, capacity: int) -> None:
        await self._call("SetPlayerCapacity", {"count": str(capacity)})

    async def get_player_capacity(self) -> int:
        return _int((await self._call("GetPlayerCapacity")).get("count"))

    async def get_player_count(self) -> int:
        return _int((await self._call("GetPlayerCount")).get("count"))

    async def is_player_connected(self, player_id: str) -> bool:
        return bool((await self._call("IsPlayerConnected", {"playerID": player_id})).get("bool", False))

    async def get_connected_players(self) -> tuple[str, ...]:
        return _strings((await self._call("GetConnectedPlayers")).get("list"))


def _error(status: int, text: str) -> SdkError:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        return SdkError(status, _int(doc.get("code"), _UNKNOWN), str(doc.get("message", text)))
    return SdkError(status, _UNKNOWN, text.strip() or f"HTTP {status}")


async def _watch_items(resp: aiohttp.ClientResponse) -> AsyncIterator[Json]:
    """The GameServer documents of a watch stream, one JSON document per line (lines of any length)."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            doc = _watch_item(line)
            if doc is not None:
                yield doc


def _watch_item(line: bytes) -> Json | None:
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
    return result if isinstance(result, Mapping) else None
