"""Benchmark: how fast the autoscaler refills the Ready buffer after a burst of allocations.

``python -m loadtest.bench_refill`` starts ``fleetmatch up`` with a fleet of the example UDP game
and a Buffer autoscaler (buffer 5), allocates 5 servers at once, and prints JSON: the refill time
beside its baseline, the game servers' own start time measured in the same run (a refill can
never beat it; the autoscaler and controller's part is the difference).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtest.stack import REPO, start_stack, stop_stack

FLEET = """\
apiVersion: fleetmatch.dev/v1
kind: Fleet
metadata: {name: refill}
spec:
  replicas: 5
  template:
    spec:
      process: {command: [python, -m, examples.udp_game.server], workingDir: %s}
---
apiVersion: fleetmatch.dev/v1
kind: FleetAutoscaler
metadata: {name: refill}
spec:
  fleetName: refill
  policy: {type: Buffer, buffer: {bufferSize: 5, minReplicas: 5, maxReplicas: 50}}
"""


async def measure(data_dir: Path) -> dict[str, Any]:
    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.store import RedisStore
    from fleetmatch.models import GameServer
    from loadtest.refill import measure_refill

    stack = json.loads((data_dir / "stack.json").read_text())
    client = connect(stack["redis_url"], name="bench-refill")
    try:
        store = RedisStore(client, GameServer, stack["namespace"])
        figures = await measure_refill(
            store, stack["allocator_url"], stack["allocator_token"], fleet="refill", count=5, buffer=5
        )
    finally:
        await client.aclose()
    return figures.as_dict()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fleetmatch-refill-") as tmp:
        data_dir = Path(tmp) / "data"
        fleet_file = Path(tmp) / "fleet.yaml"
        fleet_file.write_text(FLEET % json.dumps(str(REPO)))
        proc = start_stack(data_dir, "--fleet", str(fleet_file), port_range="7300-7399")
        try:
            figures = asyncio.run(measure(data_dir))
        finally:
            stop_stack(proc)
    report = {
        "machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "buffer": 5,
        **figures,
        "refill_over_server_start_seconds": round(
            float(figures["refill_seconds"]) - float(figures["server_start_seconds_max"]), 3
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
