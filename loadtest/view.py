"""The live view of a running load test: a ``rich`` table redrawn twice a second on a terminal.

Players by phase, arrival rate, time to match p50/p95/p99, Ready/Allocated servers, failures by
kind, and the time against the hard stop. Off a terminal (CI, tests, a pipe) nothing is drawn:
one plain log line every ``log_every`` seconds instead (logger ``loadtest.view``, at INFO; the CLI
decides where logs go). Redraws happen in the event loop (``auto_refresh=False``): no thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from loadtest.collect import Collector, LiveFigures
from loadtest.players import PHASES, Phase

log = logging.getLogger(__name__)

_PHASE_STYLE = {
    Phase.QUEUED: "yellow",
    Phase.MATCHED: "cyan",
    Phase.CONNECTED: "blue",
    Phase.PLAYING: "green",
    Phase.DONE: "bold green",
    Phase.FAILED: "bold red",
}


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"
    return text + unit


class LiveView:
    """Draws ``collector``'s figures until cancelled (``run`` is the view's task)."""

    def __init__(
        self,
        collector: Collector,
        *,
        title: str,
        planned: int,
        hard_stop: float,
        enabled: bool | None = None,
        console: Console | None = None,
        refresh: float = 0.5,
        log_every: float = 10.0,
    ) -> None:
        self.collector = collector
        self.title = title
        self.planned = planned
        self.hard_stop = hard_stop
        self.console = console or Console(file=sys.stdout)
        self.enabled = (self.console.is_terminal and sys.stdout.isatty()) if enabled is None else enabled
        self.refresh = refresh
        self.log_every = log_every

    def render(self, figures: LiveFigures) -> Group:
        header = Text.assemble(
            (self.title, "bold"),
            f"   {figures.elapsed:5.0f}s / hard stop {self.hard_stop:g}s",
            f"   players {figures.players:,}/{self.planned:,}",
            f"   arriving {figures.arrival_rate:.1f}/s",
        )
        phases = Table(title="players by phase", title_justify="left", expand=False)
        for phase in PHASES:
            phases.add_column(str(phase), justify="right", style=_PHASE_STYLE[phase])
        phases.add_row(*(f"{figures.phases.get(str(p), 0):,}" for p in PHASES))

        figures_table = Table(show_header=True, expand=False)
        for name in ("ttm p50", "ttm p95", "ttm p99", "Ready", "Allocated", "tickets", "matched"):
            figures_table.add_column(name, justify="right")
        p50, p95, p99 = figures.ttm_ms
        figures_table.add_row(
            _num(p50, " ms"),
            _num(p95, " ms"),
            _num(p99, " ms"),
            _num(figures.ready),
            _num(figures.allocated),
            f"{figures.tickets_created:,}",
            f"{figures.tickets_matched:,}",
        )
        failures = ", ".join(f"{kind} {n:,}" for kind, n in sorted(figures.failures.items())) or "none"
        footer = Text.assemble(("failures: ", "bold"), (failures, "red" if figures.failures else "green"))
        parts: list[Text | Table] = [header, phases, figures_table, footer]
        if figures.open_gaps:
            parts.append(Text(f"metrics: {figures.open_gaps} endpoint(s) not answering", style="yellow"))
        return Group(*parts)

    def line(self, figures: LiveFigures) -> str:
        phases = " ".join(f"{p}={figures.phases.get(str(p), 0)}" for p in PHASES)
        p50, p95, p99 = figures.ttm_ms
        failures = ",".join(f"{k}={n}" for k, n in sorted(figures.failures.items())) or "0"
        return (
            f"{figures.elapsed:.0f}s players={figures.players}/{self.planned} {phases} "
            f"rate={figures.arrival_rate:.1f}/s ttm_p50={_num(p50)}ms ttm_p95={_num(p95)}ms ttm_p99={_num(p99)}ms "
            f"ready={_num(figures.ready)} allocated={_num(figures.allocated)} failures={failures}"
        )

    async def run(self) -> None:
        if not self.enabled:
            while True:
                await asyncio.sleep(self.log_every)
                log.info("%s", self.line(self.collector.live()))
        with Live(
            self.render(self.collector.live()),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            try:
                while True:
                    await asyncio.sleep(self.refresh)
                    live.update(self.render(self.collector.live(time.monotonic())), refresh=True)
            finally:  # the last figures stay on screen above the summary
                live.update(self.render(self.collector.live(time.monotonic())), refresh=True)
