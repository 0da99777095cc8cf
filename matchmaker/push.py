"""Waking the requests that wait for a ticket's news (SSE, WebSocket, long-poll) in one process.

A frontend process holds **one** ``store.updates(queue)`` subscription per queue, however many
clients wait: it is started when the first request waits on the queue, supervised (restarted
after a failure) and kept until the hub closes. Each published ticket id wakes the waiters
registered for that id, which then re-read the ticket from the store: the message says *that*
something changed, the store says *what*.

No wake-up is lost:

- A waiter is registered **before** the ticket is read (``with hub.watch(id) as w: read; await
  w.wait(t)``), so a change published between the read and the wait still sets its flag.
- ``updates`` first yields ``""`` once its position is fixed: every change after that will be
  reported. A change made before it (while the subscription was starting, or restarting after a
  failure) is covered by waking every waiter of the queue once at that moment to re-read. A
  stream also re-reads at each keep-alive. The cost is one spare read per waiter then, never a
  lost assignment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any

from fleetmatch.tasks import cancel_and_wait, supervised
from matchmaker.metrics import WAITERS
from matchmaker.models import Assignment, MatchProposal, Ticket, TicketState, queue_of
from matchmaker.store import TicketStore

OPEN = frozenset({TicketState.QUEUED, TicketState.LEASED, TicketState.PROPOSED})
"""States a waiter waits out; anything else is final."""


def _news(ticket: Ticket) -> tuple[str, Assignment | None, str, MatchProposal | None]:
    """What a client is told about: a lease coming and going is not news; a match proposed to it,
    and each acceptance of it, are."""
    return ticket.state.public, ticket.assignment, ticket.reason, ticket.proposal


class Watch:
    """One waiter on one ticket. Enter it before reading the ticket, then ``wait``."""

    __slots__ = ("_event", "_hub", "queue", "ticket_id")

    def __init__(self, hub: Hub, queue: str, ticket_id: str) -> None:
        self._hub, self.queue, self.ticket_id = hub, queue, ticket_id
        self._event = asyncio.Event()

    def __enter__(self) -> Watch:
        self._hub._register(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._hub._unregister(self)

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 - a timeout is an answer here, not an error
        """True once woken since the last call (re-read the ticket now); False after ``timeout``."""
        if not self._event.is_set():
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._event.wait()
            except TimeoutError:
                return False
        if not self._hub.closed:  # once closed, every wait returns at once
            self._event.clear()
        return True


class _Subscription:
    __slots__ = ("queue", "task", "waiters")

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.waiters: dict[str, set[Watch]] = {}
        self.task: asyncio.Task[None] | None = None

    def wake(self, ticket_id: str) -> None:
        for watch in self.waiters.get(ticket_id, ()):
            watch.wake()

    def wake_all(self) -> None:
        for watches in self.waiters.values():
            for watch in watches:
                watch.wake()


class Hub:
    """Per process: one update subscription per queue, fanned out to waiters keyed by ticket id."""

    def __init__(self, store: TicketStore) -> None:
        self._store = store
        self._subs: dict[str, _Subscription] = {}
        self.closed = False

    async def __aenter__(self) -> Hub:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def subscriptions(self) -> frozenset[str]:
        """Queues this process is subscribed to (or subscribing)."""
        return frozenset(self._subs)

    @property
    def waiting(self) -> int:
        return sum(len(ws) for sub in self._subs.values() for ws in sub.waiters.values())

    def watch(self, ticket_id: str) -> Watch:
        """A waiter for ``ticket_id``: ``with hub.watch(id) as w:`` then read, then ``await w.wait(t)``."""
        queue = queue_of(ticket_id)
        if queue is None:
            raise ValueError(f"malformed ticket id {ticket_id!r}")
        return Watch(self, queue, ticket_id)

    async def wait(self, ticket_id: str, timeout: float) -> bool:  # noqa: ASYNC109 - as Watch.wait
        """Wait for news of ``ticket_id``: True when some arrived, False at the timeout.

        This registers only now: a change published before the call is missed. Callers that read
        the ticket first must use ``watch`` (register, read, wait) instead.
        """
        with self.watch(ticket_id) as watch:
            return await watch.wait(timeout)

    async def follow(self, ticket_id: str, *, keepalive: float) -> AsyncGenerator[Ticket | None, None]:
        """The ticket now, then again at each change a client sees, ending after a final state.

        ``None`` after each ``keepalive`` seconds without news (a stream's cue to send a
        keep-alive; the ticket is re-read then too). Ends early when the hub closes. Raises the
        store's ``NotFoundError`` if the ticket is gone. Use under ``contextlib.aclosing``.
        """
        loop = asyncio.get_running_loop()
        with self.watch(ticket_id) as watch:
            ticket = await self._store.get(ticket_id)
            yield ticket
            seen = _news(ticket)
            due = loop.time() + keepalive
            while ticket.state in OPEN:
                woken = await watch.wait(due - loop.time())
                if self.closed:
                    return
                ticket = await self._store.get(ticket_id)
                if _news(ticket) != seen:
                    seen = _news(ticket)
                    yield ticket
                    due = loop.time() + keepalive
                elif not woken or loop.time() >= due:
                    yield None
                    due = loop.time() + keepalive

    async def close(self) -> None:
        """Wake every waiter (they end at once) and stop the subscriptions. Idempotent."""
        self.closed = True
        subs = list(self._subs.values())
        for sub in subs:
            sub.wake_all()
        await cancel_and_wait(*(sub.task for sub in subs))

    def _register(self, watch: Watch) -> None:
        if self.closed:
            watch.wake()
        sub = self._subs.get(watch.queue)
        if sub is None:
            sub = self._subs[watch.queue] = _Subscription(watch.queue)
            if not self.closed:
                sub.task = supervised(f"matchmaker.push.{watch.queue}", lambda: self._listen(sub))
        sub.waiters.setdefault(watch.ticket_id, set()).add(watch)
        WAITERS.inc()

    def _unregister(self, watch: Watch) -> None:
        sub = self._subs[watch.queue]
        watches = sub.waiters.get(watch.ticket_id)
        if watches is not None and watch in watches:
            watches.discard(watch)
            if not watches:
                del sub.waiters[watch.ticket_id]
            WAITERS.dec()

    async def _listen(self, sub: _Subscription) -> None:
        updates = self._store.updates(sub.queue)
        try:
            async for ticket_id in updates:
                if ticket_id:
                    sub.wake(ticket_id)
                else:  # subscribed: whatever changed before now, its waiters re-read once
                    sub.wake_all()
        finally:
            aclose: Any = getattr(updates, "aclose", None)
            if aclose is not None:
                await aclose()
