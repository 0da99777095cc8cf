"""``--watch``: a list, then a line per change as it arrives, until Ctrl-C (kubectl get -w).

Fed by the backend's informer of the kind (its list, then its watch), so a change shows as soon as
the store reports it and nothing polls. Table rows keep the first table's column widths; json and
yaml print one document per change, name one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic

import click

from fleetmatch.backends import Backend
from fleetmatch.backends.base import R
from fleetmatch.cli.output import Column, Shape, dump, render, row, shown, widths
from fleetmatch.store import WatchEvent


class Printer(Generic[R]):
    """Prints items one at a time in ``output``, table rows aligned to the first table."""

    def __init__(self, output: str, shape: Shape[R]) -> None:
        self.output = output
        self.shape: Shape[R] = shape
        self.columns: list[Column[R]] = shown(output, shape)
        self.sizes: list[int] = []

    def start(self, items: list[R], *, header_only: bool) -> None:
        if self.output in ("table", "wide"):
            cells = [] if header_only else [[c.cell(i) for c in self.columns] for i in items]
            self.sizes = widths([c.header for c in self.columns], cells)
            if header_only:
                click.echo(row([c.header for c in self.columns], self.sizes))
            else:
                click.echo(render(items, self.output, self.shape))
        elif not header_only:
            for item in items:
                self.one(item)

    def one(self, item: R) -> None:
        if self.output in ("table", "wide"):
            click.echo(row([c.cell(item) for c in self.columns], self.sizes))
        elif self.output == "name":
            click.echo(f"{self.shape.kind}/{self.shape.name(item)}")
        else:
            text = dump(self.shape.document(item), self.output)
            click.echo(f"---\n{text}" if self.output == "yaml" else text)


async def watch_changes(
    backend: Backend,
    kind: type[R],
    printer: Printer[R],
    keep: Callable[[R], bool],
    *,
    watch_only: bool = False,
) -> None:
    """Print the current objects ``keep`` selects (unless ``watch_only``), then each change, forever."""
    await backend.ping()  # an unreachable store is an error now, not an informer retrying forever
    informer = backend.informer(kind)
    await informer.synced.wait()
    items = sorted((o for o in informer.cache.values() if keep(o)), key=lambda o: o.metadata.name)
    changes: asyncio.Queue[WatchEvent[R]] = asyncio.Queue()
    remove = informer.add_handler(changes.put_nowait, replay=False)  # no await since the snapshot
    try:
        printer.start(items, header_only=watch_only)
        while True:
            event = await changes.get()
            if keep(event.object):
                printer.one(event.object)
    finally:
        remove()
