"""ONE resumable watch of the Kubernetes API for every client, whatever carries its requests.

``watch_events(open_stream, since, target=...)`` yields the changes after version ``since``.
``open_stream(version)`` opens ONE watch request from ``version`` (``?watch=true&resourceVersion=
version&allowWatchBookmarks=true&timeoutSeconds=N``) and yields its lines decoded (``decode_lines``);
it raises the errors of ``fleetmatch.backends.kube.errors`` for a refused request and
``KubeApiError`` with code 0 for a lost connection. The controllers build it on kubernetes-asyncio
(``fleetmatch.backends.kube.calls.watch_stream``), the sidecar's thin store on plain aiohttp: this
module imports neither.

What the watch makes of the streams:

- ADDED, MODIFIED and DELETED are yielded with their object; a BOOKMARK only moves the position;
- a stream that ends (``timeoutSeconds``, the API server's own limit, a dropped connection) is
  reopened from the version of the last event or bookmark: nothing is lost or repeated;
- lines that are not events (blank keep-alives, other JSON, unknown types, no version) are skipped;
- 410 (an HTTP answer or an in-stream ERROR; reason Expired or Gone) raises ``ExpiredError``: the
  caller lists again and watches from the list's version;
- transient failures (no answer, 408, 429, 5xx) are retried from the same position, other
  refusals (403, a missing resource) raise;
- a stream that fails, or ends at once without delivering anything, makes the next attempt wait a
  back-off that doubles up to ``max_backoff``, so a broken server is never hammered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from fleetmatch.backends.kube.errors import ApiTarget, KubeApiError, Status, api_error

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})
MIN_STREAM_SECONDS = 1.0
"""A stream that ends sooner than this without delivering anything makes the next one wait."""

OpenStream = Callable[[str], AsyncIterator[Any]]
"""Opens one watch request from a resourceVersion; yields its decoded lines."""


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One change: ``type`` ADDED, MODIFIED or DELETED, the object as the API server sent it."""

    type: str
    object: dict[str, Any]
    version: str


async def decode_lines(lines: AsyncIterable[bytes]) -> AsyncIterator[Any]:
    """The JSON documents of a watch response, one per line; lines that are not JSON are skipped."""
    async for line in lines:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            log.warning("watch: skipped a line that is not JSON: %r", line[:200])


async def watch_events(
    open_stream: OpenStream,
    since: str,
    *,
    target: ApiTarget,
    backoff: float = 0.05,
    max_backoff: float = 2.0,
    min_stream_seconds: float = MIN_STREAM_SECONDS,
    on_retry: Callable[[KubeApiError], None] | None = None,
) -> AsyncIterator[RawEvent]:
    """Changes after ``since``, across as many streams as it takes (see the module documentation).

    ``on_retry`` sees every transient failure before the watch waits and reopens (for metrics).
    """
    loop = asyncio.get_running_loop()
    position = since
    delay = backoff
    while True:
        started = loop.time()
        progressed = False
        try:
            async for line in open_stream(position):
                event = _event(line, target.about(version=position))
                if event is None:
                    continue
                position, progressed = event.version, True
                if event.type != "BOOKMARK":
                    yield event
        except KubeApiError as exc:
            if not exc.transient:
                raise
            if on_retry is not None:
                on_retry(exc)
            log.warning("watch of %s failed (%s); resuming from %s", target.qualified, exc, position)
            progressed = False
        if progressed or loop.time() - started >= min_stream_seconds:
            delay = backoff
            continue
        await asyncio.sleep(delay)  # it broke at once: do not hammer the server
        delay = min(delay * 2, max_backoff)


def _event(line: Any, target: ApiTarget) -> RawEvent | None:
    """The event (a bookmark has type BOOKMARK) of one decoded line; None to skip it. An ERROR
    line raises its error."""
    if not isinstance(line, dict):
        return None
    kind, obj = line.get("type"), line.get("object")
    if not isinstance(obj, dict):
        return None
    if kind == "ERROR":  # a Status: 410 when the position is older than the kept history
        status = cast(Status, obj)
        raise api_error(int(status.get("code") or 0), status, target)
    meta = obj.get("metadata")
    version = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
    if not version or (kind not in EVENT_TYPES and kind != "BOOKMARK"):
        log.warning("watch of %s: ignored unexpected line %r", target.qualified, str(line)[:200])
        return None
    return RawEvent(str(kind), obj, version)


__all__ = ["EVENT_TYPES", "OpenStream", "RawEvent", "decode_lines", "watch_events"]
