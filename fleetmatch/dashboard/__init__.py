"""The web dashboard: fleets, game servers, nodes, queues and allocations of a running stack, live.

``views`` and ``history`` are the pure view-model (snapshots in, the page's JSON out); ``sources``
reads the ticket API's queue statistics and the allocator's counters; ``hub`` keeps the one view
all browsers share, fed by the process's shared informers; ``app`` serves the page (``static/``:
hand-written HTML, CSS and JavaScript, no build step, nothing loaded from elsewhere), its SSE
stream and the login. ``fleetmatch up`` serves it; ``fleetmatch dashboard`` runs it alone (the
Helm chart's ``dashboard`` component). See docs/dashboard.md.
"""

from fleetmatch.dashboard.app import DashboardService, dashboard, serve_dashboard
from fleetmatch.dashboard.hub import Hub

__all__ = ["DashboardService", "Hub", "dashboard", "serve_dashboard"]
