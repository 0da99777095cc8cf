"""Waiting in tests: poll a condition until it holds or a generous deadline passes (never a
wall-clock assertion: the deadline only turns a hang into a failure with a message)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 10.0, *, what: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what()}")
        await asyncio.sleep(0.02)
