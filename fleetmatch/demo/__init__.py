"""What ``fleetmatch up`` starts without ``--fleet``/``--queues``: the demo fleet of UDP game servers,
its Buffer autoscaler and the demo queues. Shipped as package data, so an installed wheel and the
container image have them too."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_file(name: str) -> Path:
    """The path of a shipped demo file (``fleet.yaml``, ``autoscaler.yaml``, ``queues.yaml``)."""
    return Path(str(resources.files(__name__).joinpath(name)))


DEMO_FLEET = demo_file("fleet.yaml")
DEMO_FILES = (DEMO_FLEET, demo_file("autoscaler.yaml"))
"""The demo fleet and its Buffer autoscaler."""
DEMO_QUEUES = demo_file("queues.yaml")
"""The demo queues: ``duel`` (1v1) and ``4v4``."""
