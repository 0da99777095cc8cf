"""The Agones REST SDK (https://agones.dev/site/docs/guides/client-sdks/rest/) as an aiohttp application.

One application serves every game server of a process: each handler finds its ``SdkSession``
through a ``SessionLookup`` (``SdkHost`` resolves it from the local port the request came in on).
Bodies and errors follow the grpc-gateway exactly: ``{}`` for Empty, ``{"code","message","details"}``
with the HTTP status of the gRPC code (``sdk_sidecar.codes``), 400 for malformed JSON or wrong types,
501 for a wrong method, empty bodies allowed
except on ``POST /health``, any body ignored on GET. Nothing a client sends yields a traceback: an
unexpected failure is logged and answered 500 with the same error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import WSMsgType, web

from fleetmatch.models import GameServer
from fleetmatch.tasks import cancel_and_wait
from sdk_sidecar import jsonpb, metrics, state
from sdk_sidecar.codes import GrpcCode, http_status
from sdk_sidecar.peers import caller_port
from sdk_sidecar.state import PermissionDeniedError, SdkCallError, UnavailableError

if TYPE_CHECKING:
    from sdk_sidecar.session import SdkSession

log = logging.getLogger(__name__)

JSON = "application/json"

ROUTING_ERRORS = {404: GrpcCode.NOT_FOUND, 405: GrpcCode.UNIMPLEMENTED}
"""grpc-gateway's ``DefaultRoutingErrorHandler``: an unknown path is NotFound, a known path with another
method is Unimplemented ("Method Not Allowed"), both answered with the HTTP status of their code."""


class SessionLookup(Protocol):
    """Which game server a request is for (None: none is served there)."""

    def __call__(self, request: web.Request) -> SdkSession | None: ...


LOOKUP = web.AppKey("sdk_sidecar.lookup", SessionLookup)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(doc: Any, status: int = 200) -> web.Response:
    # body + content_type keeps the header exactly "application/json", as the gateway sends it.
    return web.Response(body=jsonpb.dumps(doc), status=status, content_type=JSON)


def error_response(code: GrpcCode, message: str, status: int | None = None) -> web.Response:
    return json_response(jsonpb.error_json(code, message), http_status(code) if status is None else status)


def _method(request: web.Request) -> str:
    name = request.match_info.route.name
    return name or "unknown"


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SdkCallError as exc:
        metrics.SDK_ERRORS.labels(method=_method(request), code=exc.code.name).inc()
        return error_response(exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        routing = ROUTING_ERRORS.get(exc.status)
        if routing is not None:  # the HTTP status follows from the code: a wrong method is 501
            return error_response(routing, exc.reason)
        code = GrpcCode.RESOURCE_EXHAUSTED if exc.status == 413 else GrpcCode.INVALID_ARGUMENT
        return error_response(code if exc.status < 500 else GrpcCode.UNKNOWN, exc.reason, exc.status)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("SDK %s %s failed", request.method, request.path)
        metrics.SDK_ERRORS.labels(method=_method(request), code=GrpcCode.UNKNOWN.name).inc()
        return error_response(GrpcCode.UNKNOWN, "internal error in the SDK server (see its log)")


def _session(request: web.Request) -> SdkSession:
    session = request.app[LOOKUP](request)
    if session is None or session.closed:
        raise UnavailableError("no game server is served on this port")
    if session.guard is not None:
        transport = request.transport
        caller = caller_port(transport.get_extra_info("peername")) if transport is not None else None
        ours = transport.get_extra_info("sockname")[1] if transport is not None else None
        if caller is None or ours is None or not session.guard.allows(caller, ours):
            raise PermissionDeniedError("only this game server's own process may use its SDK")
    return session


async def _message(request: web.Request) -> dict[str, Any]:
    return jsonpb.parse_message(await request.read())


def _empty() -> web.Response:
    return json_response({})


# -- unary calls -----------------------------------------------------------------------------------


async def ready(request: web.Request) -> web.Response:
    session = _session(request)
    await _message(request)
    session.ready()
    return _empty()


async def allocate(request: web.Request) -> web.Response:
    session = _session(request)
    await _message(request)
    session.allocate()
    return _empty()


async def shutdown(request: web.Request) -> web.Response:
    session = _session(request)
    await _message(request)
    session.shutdown()
    return _empty()


async def health(request: web.Request) -> web.Response:
    """Each JSON object in the body is one ping (the gateway reads a client stream); empty → 400."""
    session = _session(request)
    for _ in jsonpb.parse_message_stream(await request.read()):
        session.health_ping()
    return _empty()


async def reserve(request: web.Request) -> web.Response:
    session = _session(request)
    seconds = jsonpb.int64_field(await _message(request), "seconds")
    session.reserve(seconds)
    return _empty()


async def set_label(request: web.Request) -> web.Response:
    session = _session(request)
    message = await _message(request)
    session.set_label(jsonpb.string_field(message, "key"), jsonpb.string_field(message, "value"))
    return _empty()


async def set_annotation(request: web.Request) -> web.Response:
    session = _session(request)
    message = await _message(request)
    session.set_annotation(jsonpb.string_field(message, "key"), jsonpb.string_field(message, "value"))
    return _empty()


async def get_gameserver(request: web.Request) -> web.Response:
    return json_response(jsonpb.gameserver_json(_session(request).get_gameserver()))


# -- player tracking (alpha) -----------------------------------------------------------------------


async def player_connect(request: web.Request) -> web.Response:
    session = _session(request)
    player_id = jsonpb.string_field(await _message(request), "playerID")
    return json_response({"bool": session.player_connect(player_id)})


async def player_disconnect(request: web.Request) -> web.Response:
    session = _session(request)
    player_id = jsonpb.string_field(await _message(request), "playerID")
    return json_response({"bool": session.player_disconnect(player_id)})


async def set_player_capacity(request: web.Request) -> web.Response:
    session = _session(request)
    session.set_player_capacity(jsonpb.int64_field(await _message(request), "count"))
    return _empty()


async def get_player_capacity(request: web.Request) -> web.Response:
    return json_response({"count": str(_session(request).get_player_capacity())})


async def get_player_count(request: web.Request) -> web.Response:
    return json_response({"count": str(_session(request).get_player_count())})


async def is_player_connected(request: web.Request) -> web.Response:
    session = _session(request)
    return json_response({"bool": session.is_player_connected(request.match_info["player_id"])})


async def get_connected_players(request: web.Request) -> web.Response:
    return json_response({"list": _session(request).get_connected_players()})


# -- counters and lists (beta) ---------------------------------------------------------------------


async def get_counter(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(jsonpb.counter_json(name, _session(request).get_counter(name)))


async def update_counter(request: web.Request) -> web.Response:
    """Body: any of ``countDiff``, ``count``, ``capacity`` (int64 as string or number)."""
    session = _session(request)
    name = request.match_info["name"]
    message = await _message(request)
    counter = session.update_counter(
        name,
        count=jsonpb.optional_int64_field(message, "count"),
        capacity=jsonpb.optional_int64_field(message, "capacity"),
        count_diff=jsonpb.int64_field(message, "countDiff"),
    )
    return json_response(jsonpb.counter_json(name, counter))


async def get_list(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(jsonpb.list_json(name, _session(request).get_list(name)))


def _mask_paths(request: web.Request) -> list[str]:
    """The paths of the query's ``update_mask`` (comma-separated, or repeated ``update_mask.paths``)."""
    given = [*request.query.getall("update_mask", []), *request.query.getall("update_mask.paths", [])]
    return [p.strip() for item in given for p in item.split(",") if p.strip()]


async def update_list(request: web.Request) -> web.Response:
    """Body: a ``List`` (decoded whole, as the gateway does); the query's ``update_mask`` says which
    fields to take, replacing the one the gateway derives from the fields present in the body."""
    session = _session(request)
    name = request.match_info["name"]
    message = await _message(request)
    capacity = jsonpb.int64_field(message, "capacity")
    values = jsonpb.string_list_field(message, "values")
    paths = _mask_paths(request)
    mask = state.list_mask(paths) if paths else state.list_mask([f for f in message if f in state.LIST_FIELDS])
    found = session.update_list(
        name, capacity=capacity if "capacity" in mask else None, values=values if "values" in mask else None
    )
    return json_response(jsonpb.list_json(name, found))


async def add_list_value(request: web.Request) -> web.Response:
    session = _session(request)
    name = request.match_info["name"]
    value = jsonpb.string_field(await _message(request), "value")
    return json_response(jsonpb.list_json(name, session.add_list_value(name, value)))


async def remove_list_value(request: web.Request) -> web.Response:
    session = _session(request)
    name = request.match_info["name"]
    value = jsonpb.string_field(await _message(request), "value")
    return json_response(jsonpb.list_json(name, session.remove_list_value(name, value)))


# -- the watch stream ------------------------------------------------------------------------------


async def watch_gameserver(request: web.Request) -> web.StreamResponse:
    """Chunked JSON lines (Unity, curl), or one text message per update over a WebSocket (Unreal)."""
    session = _session(request)
    updates = session.watch()
    first = await anext(updates)  # raises before anything is sent if the session refuses
    async with contextlib.aclosing(updates):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _watch_websocket(request, first, updates)
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(jsonpb.watch_line(first))
            async for gs in updates:
                await response.write(jsonpb.watch_line(gs))
            await response.write_eof()
        except ConnectionResetError:
            pass  # the game hung up: the stream simply ends
        return response


def _ws_message(gs: GameServer) -> str:
    return jsonpb.dumps({"result": jsonpb.gameserver_json(gs)}).decode()


async def _watch_websocket(
    request: web.Request, first: GameServer, updates: AsyncGenerator[GameServer, None]
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)

    async def send() -> None:
        with contextlib.suppress(ConnectionResetError):
            await ws.send_str(_ws_message(first))
            async for gs in updates:
                await ws.send_str(_ws_message(gs))
        await ws.close()

    sender = asyncio.create_task(send(), name="sdk.watch.websocket")
    try:
        async for message in ws:  # until the client or the sender closes
            if message.type is WSMsgType.ERROR:
                break
    finally:
        await cancel_and_wait(sender)
    return ws


def build_app(lookup: SessionLookup, *, client_max_size: int = 1024**2) -> web.Application:
    """The REST SDK, serving whichever session ``lookup`` picks for each request."""
    app = web.Application(middlewares=[_errors], client_max_size=client_max_size)
    app[LOOKUP] = lookup
    app.router.add_post("/ready", ready, name="Ready")
    app.router.add_post("/allocate", allocate, name="Allocate")
    app.router.add_post("/shutdown", shutdown, name="Shutdown")
    app.router.add_post("/health", health, name="Health")
    app.router.add_post("/reserve", reserve, name="Reserve")
    app.router.add_get("/gameserver", get_gameserver, name="GetGameServer", allow_head=False)
    app.router.add_get("/watch/gameserver", watch_gameserver, name="WatchGameServer", allow_head=False)
    app.router.add_put("/metadata/label", set_label, name="SetLabel")
    app.router.add_put("/metadata/annotation", set_annotation, name="SetAnnotation")
    app.router.add_post("/alpha/player/connect", player_connect, name="PlayerConnect")
    app.router.add_post("/alpha/player/disconnect", player_disconnect, name="PlayerDisconnect")
    app.router.add_put("/alpha/player/capacity", set_player_capacity, name="SetPlayerCapacity")
    app.router.add_get("/alpha/player/capacity", get_player_capacity, name="GetPlayerCapacity", allow_head=False)
    app.router.add_get("/alpha/player/count", get_player_count, name="GetPlayerCount", allow_head=False)
    app.router.add_get(
        "/alpha/player/connected/{player_id}", is_player_connected, name="IsPlayerConnected", allow_head=False
    )
    app.router.add_get("/alpha/player/connected", get_connected_players, name="GetConnectedPlayers", allow_head=False)
    # The ``:verb`` routes first: ``{name}`` alone would also match ``rooms:addValue``.
    app.router.add_post("/v1beta1/lists/{name}:addValue", add_list_value, name="AddListValue")
    app.router.add_post("/v1beta1/lists/{name}:removeValue", remove_list_value, name="RemoveListValue")
    app.router.add_get("/v1beta1/counters/{name}", get_counter, name="GetCounter", allow_head=False)
    app.router.add_patch("/v1beta1/counters/{name}", update_counter, name="UpdateCounter")
    app.router.add_get("/v1beta1/lists/{name}", get_list, name="GetList", allow_head=False)
    app.router.add_patch("/v1beta1/lists/{name}", update_list, name="UpdateList")
    return app
