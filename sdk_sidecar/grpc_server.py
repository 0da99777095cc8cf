"""The Agones gRPC SDK (https://agones.dev/site/docs/guides/client-sdks/) on grpcio's asyncio server.

Three services, wire-compatible with the official SDKs (Go, C++, C#, Rust, Node.js):
``agones.dev.sdk.SDK`` (lifecycle, metadata, health, watch), ``agones.dev.sdk.beta.SDK`` (counters
and lists) and ``agones.dev.sdk.alpha.SDK`` (player tracking). Each call does exactly what the REST
front door (``sdk_sidecar.http``) does with the same ``SdkSession`` operation; an ``SdkCallError``
becomes the gRPC status of its ``code`` with its message, an unexpected failure is logged and
answered UNKNOWN, and a session that is closed (its server was removed) answers UNAVAILABLE.

One ``grpc.aio.Server`` serves one game server (``serve``): a gRPC call does not say which local
port it arrived on, so unlike REST the servers cannot share one listener table. The message types
are generated from ``sdk_sidecar/protos`` into ``sdk_sidecar.grpc_gen`` (``make proto``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from fleetmatch.models import CounterStatus, GameServer, ListStatus
from sdk_sidecar import metrics, state
from sdk_sidecar.codes import GrpcCode
from sdk_sidecar.grpc_gen import alpha_pb2, alpha_pb2_grpc, beta_pb2, beta_pb2_grpc, sdk_pb2, sdk_pb2_grpc
from sdk_sidecar.peers import caller_port
from sdk_sidecar.session import SdkSession
from sdk_sidecar.state import PermissionDeniedError, SdkCallError, UnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

STATUS: dict[GrpcCode, grpc.StatusCode] = {GrpcCode(code.value[0]): code for code in grpc.StatusCode}
"""Our codes as grpcio's enum (same numbers)."""

STOP_GRACE = 1.0
"""Seconds a call in flight gets when its server is removed (as on the REST port)."""

SERVER_OPTIONS = (("grpc.so_reuseport", 0),)
"""No SO_REUSEPORT: a port still held by anyone must fail to bind, never be shared silently."""

# -- GameServer -> proto ---------------------------------------------------------------------------


def _epoch(value: float | None) -> int:
    return int(value) if value is not None else 0


def gameserver_proto(gs: GameServer) -> sdk_pb2.GameServer:
    """The SDK's ``GameServer`` message: the same data as ``jsonpb.gameserver_json``."""
    meta, status = gs.metadata, gs.counts
    period, threshold, delay = state.reported_health(gs.spec.health)
    Status = sdk_pb2.GameServer.Status
    message = sdk_pb2.GameServer(
        object_meta=sdk_pb2.GameServer.ObjectMeta(
            name=meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
            resource_version=meta.resource_version,
            generation=meta.generation,
            creation_timestamp=_epoch(meta.creation_timestamp),
            deletion_timestamp=_epoch(meta.deletion_timestamp),
            annotations=dict(meta.annotations),
            labels=dict(meta.labels),
        ),
        spec=sdk_pb2.GameServer.Spec(
            health=sdk_pb2.GameServer.Spec.Health(
                disabled=gs.spec.health.disabled,
                period_seconds=period,
                failure_threshold=threshold,
                initial_delay_seconds=delay,
            )
        ),
        status=Status(
            state=status.state.value,
            address=status.address,
            addresses=[Status.Address(type="InternalIP", address=status.address)] if status.address else [],
            ports=[Status.Port(name=p.name, port=p.port) for p in status.ports],
            counters={k: Status.CounterStatus(count=c.count, capacity=c.capacity) for k, c in status.counters.items()},
            lists={k: Status.ListStatus(capacity=v.capacity, values=v.values) for k, v in status.lists.items()},
        ),
    )
    if status.players is not None:
        players = status.players
        message.status.players.CopyFrom(
            Status.PlayerStatus(count=players.count, capacity=players.capacity, ids=players.ids)
        )
    return message


def counter_proto(name: str, counter: CounterStatus) -> beta_pb2.Counter:
    return beta_pb2.Counter(name=name, count=counter.count, capacity=counter.capacity)


def list_proto(name: str, values: ListStatus) -> beta_pb2.List:
    return beta_pb2.List(name=name, capacity=values.capacity, values=values.values)


# -- calls -----------------------------------------------------------------------------------------


class _Front:
    """What every servicer shares: the session, and errors as gRPC statuses."""

    def __init__(self, session: SdkSession) -> None:
        self._session = session
        self.port = 0
        """The port this server listens on (set once bound): what the caller's connection is to."""

    def _live(self, context: Context) -> SdkSession:
        if self._session.closed:
            raise UnavailableError("no game server is served on this port")
        guard = self._session.guard
        if guard is not None:
            caller = caller_port(context.peer())
            if caller is None or not guard.allows(caller, self.port):
                raise PermissionDeniedError("only this game server's own process may use its SDK")
        return self._session

    async def _fail(self, context: Context, method: str, exc: Exception) -> NoReturn:
        if isinstance(exc, SdkCallError):
            code, message = exc.code, exc.message
        else:
            log.error("SDK %s failed", method, exc_info=exc, extra={"gameserver": self._session.name})
            code, message = GrpcCode.UNKNOWN, "internal error in the SDK server (see its log)"
        metrics.SDK_ERRORS.labels(method=method, code=code.name).inc()
        await context.abort(STATUS[code], message)

    async def _call(self, context: Context, method: str, call: Callable[[SdkSession], T]) -> T:
        """``call(session)``, its failure reported as a gRPC status (``context.abort`` raises)."""
        try:
            return call(self._live(context))
        except Exception as exc:  # SdkCallError is the client's doing; anything else is logged
            failure = exc
        await self._fail(context, method, failure)


class SdkServicer(_Front, sdk_pb2_grpc.SDKServicer):
    """``agones.dev.sdk.SDK``."""

    async def Ready(self, request: sdk_pb2.Empty, context: Context) -> sdk_pb2.Empty:
        await self._call(context, "Ready", SdkSession.ready)
        return sdk_pb2.Empty()

    async def Allocate(self, request: sdk_pb2.Empty, context: Context) -> sdk_pb2.Empty:
        await self._call(context, "Allocate", SdkSession.allocate)
        return sdk_pb2.Empty()

    async def Shutdown(self, request: sdk_pb2.Empty, context: Context) -> sdk_pb2.Empty:
        await self._call(context, "Shutdown", SdkSession.shutdown)
        return sdk_pb2.Empty()

    async def Health(self, request_iterator: AsyncIterator[sdk_pb2.Empty], context: Context) -> sdk_pb2.Empty:
        """Each message of the (long-lived) stream is one ping; Empty once the game half-closes."""
        async for _ in request_iterator:
            await self._call(context, "Health", SdkSession.health_ping)
        return sdk_pb2.Empty()

    async def Reserve(self, request: sdk_pb2.Duration, context: Context) -> sdk_pb2.Empty:
        await self._call(context, "Reserve", lambda s: s.reserve(request.seconds))
        return sdk_pb2.Empty()

    async def SetLabel(self, request: sdk_pb2.KeyValue, context: Context) -> sdk_pb2.Empty:
        await self._call(context, "SetLabel", lambda s: s.set_label(request.key, request.value))
        return sdk_pb2.Empty()

    async def SetAnnotation(self, request: sdk_pb2.KeyValue, context: Context) -> sdk_pb2.Empty:
        await self._call(context, "SetAnnotation", lambda s: s.set_annotation(request.key, request.value))
        return sdk_pb2.Empty()

    async def GetGameServer(self, request: sdk_pb2.Empty, context: Context) -> sdk_pb2.GameServer:
        return gameserver_proto(await self._call(context, "GetGameServer", SdkSession.get_gameserver))

    async def WatchGameServer(self, request: sdk_pb2.Empty, context: Context) -> AsyncIterator[sdk_pb2.GameServer]:
        """The current GameServer at once, then each change; ends when the session closes.

        A client that cancels cancels this generator at its ``yield`` or its wait: ``aclosing``
        then frees the session's queue, and nothing is logged.
        """
        updates = await self._call(context, "WatchGameServer", SdkSession.watch)
        async with contextlib.aclosing(updates):
            try:
                first = await anext(updates)  # the session refuses here, before anything is sent
            except SdkCallError as exc:
                await self._fail(context, "WatchGameServer", exc)
            yield gameserver_proto(first)
            async for gs in updates:
                yield gameserver_proto(gs)


class BetaServicer(_Front, beta_pb2_grpc.SDKServicer):
    """``agones.dev.sdk.beta.SDK``: counters and lists."""

    async def GetCounter(self, request: beta_pb2.GetCounterRequest, context: Context) -> beta_pb2.Counter:
        name = request.name
        return counter_proto(name, await self._call(context, "GetCounter", lambda s: s.get_counter(name)))

    async def UpdateCounter(self, request: beta_pb2.UpdateCounterRequest, context: Context) -> beta_pb2.Counter:
        update = request.counterUpdateRequest  # absent: the empty request, refused as malformed

        def call(session: SdkSession) -> CounterStatus:
            return session.update_counter(
                update.name,
                count=update.count.value if update.HasField("count") else None,
                capacity=update.capacity.value if update.HasField("capacity") else None,
                count_diff=update.countDiff,
            )

        return counter_proto(update.name, await self._call(context, "UpdateCounter", call))

    async def GetList(self, request: beta_pb2.GetListRequest, context: Context) -> beta_pb2.List:
        name = request.name
        return list_proto(name, await self._call(context, "GetList", lambda s: s.get_list(name)))

    async def UpdateList(self, request: beta_pb2.UpdateListRequest, context: Context) -> beta_pb2.List:
        """``update_mask`` names the fields to set; an empty or absent mask sets the fields that are not
        their default (what the Node.js SDK's empty mask means, and what the REST gateway derives)."""
        wanted = request.list

        def call(session: SdkSession) -> ListStatus:
            paths = list(request.update_mask.paths)
            if not paths:
                paths = [f for f, given in (("capacity", wanted.capacity), ("values", wanted.values)) if given]
            mask = state.list_mask(paths)
            return session.update_list(
                wanted.name,
                capacity=wanted.capacity if "capacity" in mask else None,
                values=list(wanted.values) if "values" in mask else None,
            )

        return list_proto(wanted.name, await self._call(context, "UpdateList", call))

    async def AddListValue(self, request: beta_pb2.AddListValueRequest, context: Context) -> beta_pb2.List:
        name, value = request.name, request.value
        return list_proto(name, await self._call(context, "AddListValue", lambda s: s.add_list_value(name, value)))

    async def RemoveListValue(self, request: beta_pb2.RemoveListValueRequest, context: Context) -> beta_pb2.List:
        name, value = request.name, request.value
        listed = await self._call(context, "RemoveListValue", lambda s: s.remove_list_value(name, value))
        return list_proto(name, listed)


class AlphaServicer(_Front, alpha_pb2_grpc.SDKServicer):
    """``agones.dev.sdk.alpha.SDK``: player tracking."""

    async def PlayerConnect(self, request: alpha_pb2.PlayerID, context: Context) -> alpha_pb2.Bool:
        player = request.playerID
        return alpha_pb2.Bool(bool=await self._call(context, "PlayerConnect", lambda s: s.player_connect(player)))

    async def PlayerDisconnect(self, request: alpha_pb2.PlayerID, context: Context) -> alpha_pb2.Bool:
        player = request.playerID
        gone = await self._call(context, "PlayerDisconnect", lambda s: s.player_disconnect(player))
        return alpha_pb2.Bool(bool=gone)

    async def SetPlayerCapacity(self, request: alpha_pb2.Count, context: Context) -> alpha_pb2.Empty:
        await self._call(context, "SetPlayerCapacity", lambda s: s.set_player_capacity(request.count))
        return alpha_pb2.Empty()

    async def GetPlayerCapacity(self, request: alpha_pb2.Empty, context: Context) -> alpha_pb2.Count:
        return alpha_pb2.Count(count=await self._call(context, "GetPlayerCapacity", SdkSession.get_player_capacity))

    async def GetPlayerCount(self, request: alpha_pb2.Empty, context: Context) -> alpha_pb2.Count:
        return alpha_pb2.Count(count=await self._call(context, "GetPlayerCount", SdkSession.get_player_count))

    async def IsPlayerConnected(self, request: alpha_pb2.PlayerID, context: Context) -> alpha_pb2.Bool:
        player = request.playerID
        connected = await self._call(context, "IsPlayerConnected", lambda s: s.is_player_connected(player))
        return alpha_pb2.Bool(bool=connected)

    async def GetConnectedPlayers(self, request: alpha_pb2.Empty, context: Context) -> alpha_pb2.PlayerIDList:
        players = await self._call(context, "GetConnectedPlayers", SdkSession.get_connected_players)
        return alpha_pb2.PlayerIDList(list=players)


# -- one server per game server --------------------------------------------------------------------


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(session: SdkSession, host: str, port: int = 0) -> tuple[grpc.aio.Server, int]:
    """Start serving ``session``'s gRPC SDK on ``host:port`` (0: a free port grpc picks); the server
    and its port. ``OSError`` if the port cannot be bound (nothing is left running then)."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    fronts = (SdkServicer(session), BetaServicer(session), AlphaServicer(session))
    sdk_pb2_grpc.add_SDKServicer_to_server(fronts[0], server)
    beta_pb2_grpc.add_SDKServicer_to_server(fronts[1], server)
    alpha_pb2_grpc.add_SDKServicer_to_server(fronts[2], server)
    try:
        bound = server.add_insecure_port(_address(host, port))
    except RuntimeError as exc:  # grpcio: "Failed to bind to address ..."
        raise OSError(f"cannot serve the gRPC SDK on {_address(host, port)}: {exc}") from exc
    if bound == 0:  # older grpcio reports a failed bind this way
        raise OSError(f"cannot serve the gRPC SDK on {_address(host, port)}")
    for front in fronts:
        front.port = bound
    await server.start()
    return server, bound
