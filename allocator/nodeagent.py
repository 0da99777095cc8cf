"""The node agent: the local kubelet of fleetmatch.

For GameServers that need a node it claims them (one conditional update, so several agents can
race safely), gives each its ports from the node's range, hosts its SDK endpoint (all of them in
this one process, through ``sdk_sidecar.SdkHost``), and runs the game process from the fleet
template. It then keeps store and processes in step:

- RequestReady (the game called Ready) → Ready, once the process runs;
- a process that exits without having asked for Shutdown → Unhealthy (the fleet replaces it);
- Shutdown → stop the process, then delete the GameServer;
- Unhealthy or Error → stop the process, keep the object for the fleet controller;
- deleted → stop the process, release its ports.

The loop is level-triggered on an informer: every wake-up compares the whole cache with what
runs here, so a missed event or an agent restart converges to the same place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from allocator import gamelogs, metrics
from allocator.ports import PortError, PortPool
from fleetmatch.backends import Backend
from fleetmatch.errors import NotFoundError, StoreError
from fleetmatch.events import Severity, record_quietly
from fleetmatch.models import (
    TERMINAL_STATES,
    GameServer,
    GameServerState,
    PortProtocol,
    failed,
    with_meta,
)
from fleetmatch.nodes import NODE_BOOT_ANNOTATION
from fleetmatch.procs import die_with_parent
from fleetmatch.reconcile import ReconcileLoop
from fleetmatch.settings import Settings
from fleetmatch.store import WatchEvent, modify
from fleetmatch.tasks import cancel_and_wait, supervised

log = logging.getLogger(__name__)


class SdkEndpoints(Protocol):
    """Where the agent's game servers reach the Agones SDK: ``sdk_sidecar.SdkHost``, given by the
    composition root (the allocator does not import the SDK server)."""

    async def start(self) -> None: ...

    async def add(self, gs: GameServer, *, port: int = 0, grpc_port: int = 0, confined: bool = False) -> int:
        """Serve ``gs``'s SDK; the bound REST port. ``confined``: only the process ``confine`` names
        (and its children) may call it, where the platform can tell."""

    def confine(self, name: str, pid: int) -> None:
        """Admit only process ``pid`` and its children to ``name``'s SDK."""

    def grpc_port_of(self, name: str) -> int | None: ...

    def observe(self, gs: GameServer) -> None:
        """The store's latest view of a hosted server."""

    async def flush(self, name: str, within: float = 5.0) -> bool:
        """Write a hosted server's pending SDK changes; False if not done within ``within``."""

    async def remove(self, name: str) -> None: ...

    async def close(self) -> None: ...


def port_is_free(port: int, protocol: PortProtocol = PortProtocol.TCPUDP) -> bool:
    """Can a game bind ``port`` on all interfaces right now? (Another program may hold it.)"""
    kinds = {
        PortProtocol.UDP: (socket.SOCK_DGRAM,),
        PortProtocol.TCP: (socket.SOCK_STREAM,),
        PortProtocol.TCPUDP: (socket.SOCK_DGRAM, socket.SOCK_STREAM),
    }[protocol]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


@dataclass
class LocalServer:
    """What this agent runs for one GameServer."""

    name: str
    sdk_port: int
    grpc_port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    waiter: asyncio.Task[None] | None = None
    stopping: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class NodeAgent:
    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        host: SdkEndpoints,
        *,
        environ: Mapping[str, str],
        workdir: Path | None = None,
        resync_seconds: float = 2.0,
        port_probe: Callable[[int], bool] = port_is_free,
        log_check_seconds: float = 1.0,
    ) -> None:
        self.store = backend.gameservers
        self.events = backend.events
        self.nodes = backend.nodes
        self.boot = secrets.token_hex(8)
        """This run's id: stamped on the servers it schedules and confirms (``fleetmatch.nodes``)."""
        self.settings = settings
        self.node = settings.node
        self.host = host
        self.informer = backend.informer(GameServer)
        self.loop = ReconcileLoop(self.reconcile, resync=resync_seconds)
        self.ports = PortPool(self.node.port_min, self.node.port_max, is_free=port_probe)
        self.local: dict[str, LocalServer] = {}
        self._environ = dict(environ)
        self._workdir = workdir or Path.cwd()
        self._logs = settings.data_dir / "logs" / self.node.name
        self._log_check = log_check_seconds
        self._labels = {"node": self.node.name}

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled; on the way out, mark our servers Unhealthy and stop every process."""
        self._logs.mkdir(parents=True, exist_ok=True)
        await self.host.start()
        remove_handler = self.informer.add_handler(self._on_event)
        heartbeat = supervised(f"nodeagent[{self.node.name}].heartbeat", self._heartbeat)
        tending = supervised(f"nodeagent[{self.node.name}].logs", self._tend_logs)
        try:
            await self.informer.synced.wait()
            self._recover_ports()
            await self.loop.run()
        finally:
            remove_handler()
            await asyncio.shield(self._shutdown())
            await cancel_and_wait(heartbeat, tending)

    async def announce(self) -> None:
        """Heartbeat once, now. A stack that restarts does this before it serves allocations: the
        new boot id fences off at once the servers its previous run left behind."""
        if self.nodes is not None:
            await self.nodes.heartbeat(
                self.node.name, boot=self.boot, address=self.node.address, capacity=self.node.max_servers
            )

    async def _heartbeat(self) -> None:
        """Renew this node's record every quarter lease, as long as the agent runs."""
        period = self.node.lease_seconds / 4
        while True:
            try:
                await self.announce()
            except StoreError as exc:
                log.warning("node %s: heartbeat failed (%s); retrying in %.1fs", self.node.name, exc, period)
            await asyncio.sleep(period)

    async def _tend_logs(self) -> None:
        """Rotate running games' logs every ``log_check_seconds``; about once a minute (and at
        start: logs a previous run left) delete finished servers' old logs (``allocator.gamelogs``)."""
        node = self.node
        next_prune = 0.0
        while True:
            for local in list(self.local.values()):
                await asyncio.to_thread(
                    gamelogs.rotate_if_large, local.log_path, node.max_log_bytes, node.log_generations
                )
            if time.monotonic() >= next_prune:
                await asyncio.to_thread(self._prune_logs)
                next_prune = time.monotonic() + 60.0
            await asyncio.sleep(self._log_check)

    def _prune_logs(self) -> None:
        gone = gamelogs.prune(self._logs, set(self.local), self.node.max_log_files, self.node.max_log_age)
        if gone:
            log.info("node %s: deleted %d old game log file(s)", self.node.name, len(gone))

    async def _shutdown(self) -> None:
        live = [name for name, loc in self.local.items() if loc.stopping is None]
        # Tell the store first, so no allocator hands out a server that is about to stop.
        await asyncio.gather(*(self._mark(name, GameServerState.UNHEALTHY, "node agent stopped") for name in live))
        for name in live:
            self._begin_stop(name, delete=False)
        await asyncio.gather(*(loc.stopping for loc in list(self.local.values()) if loc.stopping))
        await self.host.close()

    def _on_event(self, event: WatchEvent[GameServer]) -> None:
        gs = event.object
        if gs.name in self.local and gs.status.node_name == self.node.name:
            self.host.observe(gs)
        self.loop.poke()

    def _recover_ports(self) -> None:
        """After a restart, ports recorded on our servers stay taken until those servers are cleaned up."""
        for gs in self.informer.cache.values():
            if gs.status.node_name == self.node.name and gs.status.ports:
                with contextlib.suppress(PortError):
                    self.ports.reserve(gs.name, [p.port for p in gs.status.ports])

    # -- reconciliation ----------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Bring processes and store in step with the cache, one GameServer at a time."""
        cache = self.informer.cache
        for name in [n for n in self.local if n not in cache]:
            self._begin_stop(name, delete=False)
        for gs in sorted(cache.values(), key=lambda g: (g.metadata.creation_timestamp or 0, g.name)):
            try:
                await self._reconcile_one(gs)
            except StoreError as exc:
                log.warning("gameserver %s: %s", gs.name, exc, extra={"gameserver": gs.name})
            except Exception:
                log.exception("gameserver %s: reconcile failed", gs.name, extra={"gameserver": gs.name})
        metrics.NODE_GAMESERVERS.labels(**self._labels).set(len(self.local))
        metrics.NODE_PORTS_FREE.labels(**self._labels).set(self.ports.free_count)

    async def _reconcile_one(self, gs: GameServer) -> None:
        state = gs.state
        if gs.status.node_name != self.node.name:
            if (
                not gs.status.node_name
                and state in (GameServerState.CREATING, GameServerState.PORT_ALLOCATION)
                and gs.metadata.deletion_timestamp is None
                and len(self.local) < self.node.max_servers
            ):
                await self._claim(gs)
            return
        local = self.local.get(gs.name)
        if state in TERMINAL_STATES:
            if local is not None:
                self._begin_stop(gs.name, delete=state is GameServerState.SHUTDOWN)
            else:
                self.ports.release(gs.name)
                if state is GameServerState.SHUTDOWN:
                    with contextlib.suppress(NotFoundError):
                        await self.store.delete(gs.name)
            return
        if local is None:
            if state is GameServerState.SCHEDULED:
                await self._start(gs)
            else:
                # Ours, past Scheduled, but no process here: the agent restarted and the game died with it.
                await self._mark(gs.name, GameServerState.UNHEALTHY, "game process lost (node agent restarted)")
            return
        if local.stopping is None and state is GameServerState.REQUEST_READY and local.running:
            await modify(self.store, gs.name, self._promote_ready)

    def _confirmed(self, gs: GameServer) -> GameServer:
        """``gs`` stamped with this run's boot id: allocatable only while this run lives."""
        if gs.metadata.annotations.get(NODE_BOOT_ANNOTATION) == self.boot:
            return gs
        return with_meta(gs, annotations={**gs.metadata.annotations, NODE_BOOT_ANNOTATION: self.boot})

    def _promote_ready(self, gs: GameServer) -> GameServer | None:
        """RequestReady -> Ready, confirmed by this run (the game's process runs here, now)."""
        if gs.state is not GameServerState.REQUEST_READY:
            return None
        return self._confirmed(gs).with_status(state=GameServerState.READY)

    async def _claim(self, gs: GameServer) -> None:
        try:
            ports = self.ports.assign(gs, reserve_static=True)
        except PortError as exc:
            log.warning("cannot place %s on %s: %s", gs.name, self.node.name, exc, extra={"gameserver": gs.name})
            return
        claimed = self._confirmed(gs).with_status(
            state=GameServerState.SCHEDULED,
            node_name=self.node.name,
            address=self.node.address,
            ports=ports,
        )
        try:
            await self.store.update(claimed)
        except StoreError:
            self.ports.release(gs.name)  # another agent won, or the object changed: look again next pass
            return
        log.info("scheduled %s on %s", gs.name, self.node.name, extra={"gameserver": gs.name})

    # -- processes ---------------------------------------------------------------------------

    def _child_env(self, gs: GameServer, sdk_port: int, grpc_port: int) -> dict[str, str]:
        template = gs.spec.process
        env = dict(self._environ)
        # `python` in a template means the interpreter fleetmatch runs on (its venv), first.
        env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH", "")]))
        if template is not None:
            env.update(template.env)
        env.update(
            {
                "AGONES_SDK_HTTP_PORT": str(sdk_port),
                "AGONES_SDK_GRPC_PORT": str(grpc_port),
                "FLEETMATCH_GAMESERVER": gs.name,
                "FLEETMATCH_NAMESPACE": gs.metadata.namespace,
                "PYTHONUNBUFFERED": "1",
            }
        )
        for i, port in enumerate(gs.status.ports):
            if i == 0:
                env["FLEETMATCH_PORT"] = str(port.port)
            env[f"FLEETMATCH_PORT_{port.name.upper().replace('-', '_')}"] = str(port.port)
        return env

    async def _start(self, gs: GameServer) -> None:
        template = gs.spec.process
        if template is None:
            await self._mark(gs.name, GameServerState.ERROR, "spec.process is empty: nothing to run on a node")
            return
        # Both SDK ports listen before the game starts (no connect-before-listen race), each on a
        # port the OS picked when binding it: nothing to reserve ahead, so nothing to race for.
        sdk_port = await self.host.add(gs, confined=True)
        grpc_port = self.host.grpc_port_of(gs.name)
        assert grpc_port is not None  # hosted: add() just returned
        local = LocalServer(gs.name, sdk_port, grpc_port, self._logs / f"{gs.name}.log")
        self.local[gs.name] = local
        workdir = Path(template.working_dir) if template.working_dir else self._workdir
        if not workdir.is_absolute():
            workdir = self._workdir / workdir
        argv = [*template.command, *template.args]
        try:
            with local.log_path.open("ab") as out:
                local.process = await asyncio.create_subprocess_exec(
                    *argv,
                    env=self._child_env(gs, sdk_port, grpc_port),
                    cwd=workdir,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                    start_new_session=True,
                )
        except OSError as exc:
            log.error("cannot start %s: %s", gs.name, exc, extra={"gameserver": gs.name})
            await self._mark(gs.name, GameServerState.ERROR, f"cannot start {argv[0]!r}: {exc}")
            return
        self.host.confine(gs.name, local.process.pid)  # from now on only the game may call its SDK
        metrics.NODE_PROCESS_STARTS.labels(**self._labels).inc()
        local.waiter = asyncio.create_task(self._watch_exit(local), name=f"nodeagent.process[{gs.name}]")
        log.info(
            "started %s (pid %d, sdk ports %d (REST) %d (gRPC), ports %s)",
            gs.name,
            local.process.pid,
            sdk_port,
            grpc_port,
            ",".join(str(p.port) for p in gs.status.ports),
            extra={"gameserver": gs.name},
        )

    async def _watch_exit(self, local: LocalServer) -> None:
        assert local.process is not None
        code = await local.process.wait()
        if local.stopping is not None:
            return
        await self.host.flush(local.name)  # an SDK Shutdown sent just before exiting must land first
        try:
            gs = await self.store.get(local.name)
        except NotFoundError:
            gs = None
        if gs is not None and gs.state is GameServerState.SHUTDOWN:
            reason = "shutdown"
        else:
            reason = "exited" if code == 0 else "crashed"
            why = f"game process {_describe_exit(code)}"
            if last := gamelogs.last_line(local.log_path):
                why += f"; last output: {last}"
            await self._mark(local.name, GameServerState.UNHEALTHY, why)
        metrics.NODE_PROCESS_EXITS.labels(reason=reason, **self._labels).inc()
        log.info("%s: game process %s", local.name, _describe_exit(code), extra={"gameserver": local.name})
        self.loop.poke()  # wake the loop to clean up

    def _begin_stop(self, name: str, *, delete: bool) -> None:
        local = self.local.get(name)
        if local is not None and local.stopping is None:
            local.stopping = asyncio.create_task(self._stop(local, delete), name=f"nodeagent.stop[{name}]")

    async def _stop(self, local: LocalServer, delete: bool) -> None:
        proc = local.process
        if proc is not None and proc.returncode is None:
            grace = self.node.grace_seconds
            gs = self.informer.cache.get(local.name)
            if gs is not None and gs.spec.process is not None:
                grace = gs.spec.process.termination_grace_seconds
            _signal_group(proc, signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                _signal_group(proc, signal.SIGKILL)
                await proc.wait()
            metrics.NODE_PROCESS_EXITS.labels(reason="stopped", **self._labels).inc()
        if local.waiter is not None:
            await cancel_and_wait(local.waiter)
        await self.host.remove(local.name)
        self.ports.release(local.name)
        self.local.pop(local.name, None)
        if delete:
            with contextlib.suppress(NotFoundError):
                await self.store.delete(local.name)
            gamelogs.remove(
                local.log_path, self.node.log_generations
            )  # a clean Shutdown leaves none; failures keep theirs
        self._prune_logs()
        self.loop.poke()

    async def _mark(self, name: str, state: GameServerState, why: str) -> None:
        """Move a GameServer to a terminal state (never out of one), say why, and keep the reason
        as an event record (it outlives the GameServer).

        Shielded as a whole: marking it lets the fleet controller delete it, and stopping the deleted
        server cancels the process watcher that is marking it, which could otherwise land between the
        write and the record and drop the record."""
        await asyncio.shield(self._mark_and_record(name, state, why))

    async def _mark_and_record(self, name: str, state: GameServerState, why: str) -> None:
        try:
            marked = await modify(self.store, name, lambda gs: failed(gs, state, why))
        except NotFoundError:
            return
        if marked is None:
            return
        log.warning("%s -> %s: %s", name, state, why, extra={"gameserver": name})
        await record_quietly(self.events, GameServer.KIND, name, state.value, why, type=Severity.WARNING)


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
