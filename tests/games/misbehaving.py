"""A game server that misbehaves on purpose, for lifecycle tests. ``GAME_MODE`` picks how:

- ``silent``: calls Ready, never sends a health ping (→ Unhealthy by health checking);
- ``shutdown``: calls Ready, then Shutdown after ``GAME_DELAY`` seconds, then exits 0;
- ``exit``: calls Ready, then exits with code 3 after ``GAME_DELAY`` seconds (→ Unhealthy);
- ``exit-before-shutdown-lands``: calls Shutdown and exits at once (the write must still land).
"""

from __future__ import annotations

import asyncio
import os
import sys

from sdk_sidecar.client import SDK


async def main() -> int:
    mode = os.environ.get("GAME_MODE", "silent")
    delay = float(os.environ.get("GAME_DELAY", "0.5"))
    async with SDK() as sdk:
        await sdk.connect()
        await sdk.ready()
        if mode == "silent":
            await asyncio.sleep(3600)
        await asyncio.sleep(delay)
        if mode == "exit":
            return 3
        await sdk.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
