"""fleetmatch: the shared kernel and the CLI.

Models and codecs (``models``, ``codec``), errors, settings, the state-store port (``store``,
``informer``), the state backends (``backends``), metrics and task helpers; plus the
composition root that wires the services together (``cli``, ``up``). Only ``cli`` and ``up``
import the service packages.
"""

__version__ = "0.1.0"
