"""The ``fleetmatch`` executable's first step: ``fleetmatch sidecar`` goes straight to the in-pod
SDK sidecar, everything else to the click CLI.

Why: the sidecar runs next to every game server and has a memory budget (under 60 MB RSS); the
CLI's imports (click, redis-py, PyYAML, the service packages) would cost it about 8 MB for nothing.
"""

from __future__ import annotations

import sys

from fleetmatch.procs import no_grpc_fork_handlers


def main() -> None:
    no_grpc_fork_handlers(override=True)
    if len(sys.argv) > 1 and sys.argv[1] == "sidecar":
        from sdk_sidecar.pod import main as sidecar_main

        sidecar_main(sys.argv[2:])
        return
    from fleetmatch.cli import main as cli_main

    cli_main()
