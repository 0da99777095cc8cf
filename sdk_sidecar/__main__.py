"""``python -m sdk_sidecar``: one game server's SDK in its own process, next to a game that runs
elsewhere (a container, a debugger) while its GameServer lives in fleetmatch's store.

    python -m sdk_sidecar --gameserver NAME [--http-port 9358] [--grpc-port 9357] [--address 127.0.0.1]

The node agent hosts every local game server's SDK in its one process; this is the same SDK for a
single game. The GameServer is read from the configured backend (``REDIS_URL``, or
``FLEETMATCH_BACKEND=kubernetes``); the flags, their environment variables and what a run does are
those of every sidecar (``sdk_sidecar.shell``). Here RequestReady is turned into Ready by default
(``--no-promote-ready`` leaves that to someone else) and SIGTERM writes what is pending and exits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sdk_sidecar.shell import STANDALONE
from sdk_sidecar.shell import main as shell_main


def main(argv: Sequence[str] | None = None) -> None:
    shell_main(argv, os.environ, defaults=STANDALONE, prog="python -m sdk_sidecar")


if __name__ == "__main__":
    main()
