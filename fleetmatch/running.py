"""Running a coroutine as a process's main: SIGTERM cancels it like Ctrl-C, uvloop when installed.

Every entry point (the CLI's commands, the SDK sidecar shells, the load tester) runs through
``run`` so that stopping always unwinds the same way.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, service: bool = False) -> T:
    """Run ``main``; SIGTERM cancels it like Ctrl-C does, so cleanup always runs.

    For a ``service`` (up, node-agent, controller) a signal is the normal way to stop: exit 0 after
    the cleanup. Other commands interrupted by Ctrl-C exit 130, as shells expect.
    """

    async def wrapper() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        stops = [signal.SIGTERM]
        if service and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # Started in the background by a shell without job control, SIGINT arrives ignored;
            # a service still stops on it as promised (scripts and test harnesses send it).
            stops.append(signal.SIGINT)
        for signum in stops:
            loop.add_signal_handler(signum, task.cancel)
        try:
            return await main
        finally:
            for signum in stops:
                loop.remove_signal_handler(signum)

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(wrapper())
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(0 if service else 130)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it roughly halves the event loop's own cost per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
