"""The one resumable watch (``fleetmatch.backends.kube.watch``), driven by scripted streams: what it
yields, where it reopens, what it retries and what it raises. The stores and the Pod controller run
it against the fake API server in their own tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fleetmatch.backends.kube.errors import ApiTarget, ForbiddenError, KubeApiError, unreachable
from fleetmatch.backends.kube.watch import RawEvent, decode_lines, watch_events
from fleetmatch.errors import ExpiredError

TARGET = ApiTarget("watch", "gameservers", "fleetmatch.dev", "default", "GameServer")
Step = list[Any] | Exception
"""One stream: the lines it yields (an Exception among them is raised there), or an error on opening."""


def obj(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


def line(kind: str, name: str, version: str) -> dict[str, Any]:
    return {"type": kind, "object": obj(name, version)}


class Script:
    """``open_stream`` playing ``steps`` in order (then streams that end empty), recording positions."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.opened: list[str] = []

    async def __call__(self, version: str) -> AsyncIterator[Any]:
        self.opened.append(version)
        step = self.steps.pop(0) if self.steps else []
        if isinstance(step, Exception):
            raise step
        for item in step:
            if isinstance(item, Exception):
                raise item
            yield item


async def collect(script: Script, n: int, since: str = "1", **options: Any) -> list[RawEvent]:
    out: list[RawEvent] = []
    async with asyncio.timeout(10):
        async for event in watch_events(script, since, target=TARGET, backoff=0.001, **options):
            out.append(event)
            if len(out) == n:
                break
    return out


async def test_events_in_order_with_bookmarks_and_junk_skipped() -> None:
    script = Script(
        [
            "\n",
            line("ADDED", "a", "2"),
            {"type": "BOOKMARK", "object": {"kind": "GameServer", "metadata": {"resourceVersion": "5"}}},
            ["not", "an", "event"],
            {"type": "WHATEVER", "object": obj("x", "6")},
            {"type": "MODIFIED", "object": {"metadata": {"name": "no-version"}}},
            line("MODIFIED", "a", "7"),
        ],
        [line("DELETED", "a", "9")],
    )
    events = await collect(script, 3)
    assert [(e.type, e.object["metadata"]["name"], e.version) for e in events] == [
        ("ADDED", "a", "2"),
        ("MODIFIED", "a", "7"),
        ("DELETED", "a", "9"),
    ]
    assert script.opened == ["1", "7"]


async def test_a_bookmark_is_where_the_next_stream_starts() -> None:
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "40"}}}
    script = Script([line("ADDED", "a", "2"), bookmark], [line("ADDED", "b", "41")])
    await collect(script, 2)
    assert script.opened == ["1", "40"]


async def test_expired_raises_whether_answered_or_in_the_stream() -> None:
    with pytest.raises(ExpiredError):
        await collect(Script(ExpiredError("GameServer", "1")), 1)
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Gone", "message": "too old"}}
    script = Script([line("ADDED", "a", "2"), gone])
    with pytest.raises(ExpiredError) as caught:
        async with asyncio.timeout(10):
            async for _ in watch_events(script, "1", target=TARGET):
                pass
    assert caught.value.version == "2"


async def test_transient_failures_resume_from_the_same_position() -> None:
    unavailable = {"type": "ERROR", "object": {"kind": "Status", "code": 503, "reason": "ServiceUnavailable"}}
    lost = unreachable(ConnectionResetError("reset"), TARGET)
    retried: list[int] = []
    script = Script(
        [line("ADDED", "a", "2"), lost],
        KubeApiError("HTTP 429", code=429, target=TARGET),
        [unavailable],
        [line("ADDED", "b", "3")],
    )
    events = await collect(script, 2, on_retry=lambda exc: retried.append(exc.code))
    assert [e.version for e in events] == ["2", "3"]
    assert script.opened == ["1", "2", "2", "2"]
    assert retried == [0, 429, 503]


async def test_refusals_that_no_retry_cures_raise() -> None:
    forbidden = ForbiddenError("forbidden", code=403, target=TARGET)
    with pytest.raises(ForbiddenError):
        await collect(Script([line("ADDED", "a", "2")], forbidden), 5)


async def test_streams_that_end_at_once_back_off_doubling_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)  # what the watch module calls
    stop = ForbiddenError("forbidden", code=403, target=TARGET)
    script = Script(*([[]] * 6), [line("ADDED", "a", "2")], [], stop)
    with pytest.raises(ForbiddenError):
        async with asyncio.timeout(10):
            async for _ in watch_events(script, "1", target=TARGET, backoff=0.1, max_backoff=0.5):
                pass
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5, 0.1]  # a stream that delivered resets the back-off


async def test_decode_lines_skips_blank_and_broken_lines() -> None:
    async def lines() -> AsyncIterator[bytes]:
        for raw in (b"\n", json.dumps(line("ADDED", "a", "2")).encode() + b"\n", b"{not json\n", b"  \r\n"):
            yield raw

    assert [doc async for doc in decode_lines(lines())] == [line("ADDED", "a", "2")]
