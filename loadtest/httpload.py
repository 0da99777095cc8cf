"""A minimal HTTP/1.1 load generator for the benchmarks: keep-alive connections, requests sent as
prepared bytes, responses parsed just enough to time them (aiohttp's client costs several times
more CPU per request than the servers under test, and would measure itself instead)."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class _Connection(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 client connection: one request at a time, responses parsed
    just enough (status line, Content-Length) to time them. aiohttp's client costs several times
    more CPU per request than the servers under test, and would measure itself instead."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        marker = head.find(b"content-length:")
        length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def request(self, payload: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


def post(url: str, token: str, body: bytes) -> bytes:
    """The bytes of one keep-alive ``POST`` of a JSON ``body`` with a bearer ``token``."""
    parsed = urllib.parse.urlsplit(url)
    return (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def load(
    url: str, payloads: Sequence[bytes], seconds: float, concurrency: int, rate: float | None
) -> dict[str, Any]:
    """Send ``payloads`` (whole requests, in turn, from the first again once all were sent) to
    ``url``'s host: closed loop (``concurrency`` connections, one request in flight on each) or,
    with ``rate``, open loop: requests start on a fixed schedule, on whichever connection is free."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    turn = itertools.cycle(payloads)
    loop = asyncio.get_running_loop()
    connections = [(await loop.create_connection(_Connection, host, port))[1] for _ in range(concurrency)]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    async def one(conn: _Connection, scheduled: float) -> None:
        status = await conn.request(next(turn))
        statuses[status] += 1
        if status in (200, 201):
            latencies.append(time.perf_counter() - scheduled)

    start = time.perf_counter()
    deadline = start + seconds
    if rate is None:

        async def worker(conn: _Connection) -> None:
            while (now := time.perf_counter()) < deadline:
                await one(conn, now)

        await asyncio.gather(*(worker(c) for c in connections))
    else:
        # Latency counts from the scheduled start, so a stall shows up (no coordinated omission).
        free: asyncio.Queue[_Connection] = asyncio.Queue()
        for conn in connections:
            free.put_nowait(conn)

        async def timed(due: float) -> None:
            conn = await free.get()
            try:
                await one(conn, due)
            finally:
                free.put_nowait(conn)

        tasks: set[asyncio.Task[None]] = set()
        sent = 0
        while (now := time.perf_counter()) < deadline:
            while sent < (now - start) * rate:
                task = asyncio.create_task(timed(start + sent / rate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.0005)
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
    latencies.sort()
    ok = statuses[200] + statuses[201]
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 3),
        "ok_per_second": round(ok / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else None,
    }
