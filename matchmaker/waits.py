"""What a director feeds the queue's wait summary (``matchmaker.estimate``): gathered during a
pass, written once at its end, so a frontend can estimate any ticket's wait without a director.

A pass notes each matched ticket (its keys, its wait, its players); at the end ``publish`` reads
the stored summary, folds in the waits and match rates, counts the players waiting by key in the
pool snapshot (``depths_of``), and writes the changed fields: one read and one write of a small
hash per pass. Two directors of one queue may overwrite each other's pass now and then: an
estimate, not a count. Over a pool larger than ``DEPTH_SAMPLE`` the depth is counted on an even
sample (every n-th ticket, by age) scaled back up, so a 100,000-ticket pool costs what 5,000 do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from fleetmatch.errors import StoreError
from fleetmatch.tasks import raise_if_cancelling
from matchmaker.estimate import decode_summary, depths_of, keys_of, publish
from matchmaker.models import Ticket
from matchmaker.rules import Queue
from matchmaker.store import TicketStore

log = logging.getLogger(__name__)

DEPTH_SAMPLE = 5_000
"""Pool tickets whose keys one pass computes, at most (an even sample of a larger pool)."""


class WaitRecorder:
    """One director's notes for its queue's wait summary."""

    def __init__(self, store: TicketStore, name: str, rules: Queue | None, clock: Callable[[], float]) -> None:
        self.store, self.name, self.rules, self.clock = store, name, rules, clock
        self._matched: dict[str, tuple[tuple[str, ...], float, int]] = {}
        self._idle = False
        """The last pass wrote an empty queue: an idle queue is not read and rewritten every pass."""

    def matched(self, ticket: Ticket, waited: float) -> None:
        self._matched[ticket.id] = (keys_of(ticket, self.rules), waited, ticket.size)

    async def publish(self, pool: Sequence[Ticket]) -> None:
        """Write this pass's waits and rates, and the depths of ``pool`` (the pass's snapshot) less
        the tickets this pass matched."""
        matched, self._matched = self._matched, {}
        if self._idle and not matched and not pool:
            return
        now = self.clock()
        step = max(1, -(-len(pool) // DEPTH_SAMPLE))
        sample = [t for t in pool[::step] if t.id not in matched]
        depths = depths_of(((keys_of(t, self.rules), t.size * step, t.enqueued_at) for t in sample), now)
        try:
            summary = decode_summary(await self.store.wait_summary(self.name))
            await self.store.record_waits(self.name, publish(summary, matched.values(), depths, now))
            self._idle = not matched and not pool
        except StoreError as exc:
            raise_if_cancelling()
            log.warning("publishing the wait summary of %s failed: %s", self.name, exc, extra={"queue": self.name})
