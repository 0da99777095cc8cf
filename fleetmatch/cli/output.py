"""How every command prints what it read: ``-o table|wide|json|yaml|name``, as kubectl does.

A list command describes its rows once (``Column``s, some only in ``wide``) and how one item becomes
a document and a name; ``render`` does the rest. ``-o json`` of a list is ``{"kind": "List",
"items": [...]}`` like ``kubectl get -o json``; of a single item (``get NAME``) it is that item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import click
import yaml

T = TypeVar("T")

OUTPUTS = ("table", "wide", "json", "yaml", "name")


def output_option(default: str = "table") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(OUTPUTS),
        default=default,
        show_default=True,
        help="table; wide (more columns); json or yaml (whole documents); name (kind/name per line).",
    )


@dataclass(frozen=True)
class Column(Generic[T]):
    header: str
    cell: Callable[[T], str]
    wide: bool = False  # shown only with -o wide


@dataclass(frozen=True)
class Shape(Generic[T]):
    """How one kind of item is printed."""

    kind: str  # "gameserver": -o name prints gameserver/NAME
    columns: Sequence[Column[T]]
    document: Callable[[T], dict[str, Any]]
    name: Callable[[T], str]


def age(created: float | None, now: float) -> str:
    """kubectl's AGE: the largest whole unit (``3d``, ``5h``, ``2m``, ``40s``)."""
    if created is None:
        return "-"
    seconds = max(0, int(now - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]


def row(cells: Sequence[str], sizes: Sequence[int]) -> str:
    """One table line, cells padded to ``sizes`` (a watch keeps the first table's sizes)."""
    return "  ".join(c.ljust(w) for c, w in zip(cells, sizes, strict=True)).rstrip()


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    sizes = widths(headers, rows)
    return "\n".join([row(headers, sizes), *(row(r, sizes) for r in rows)])


def dump(doc: Any, output: str) -> str:
    if output == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip("\n")
    return json.dumps(doc, indent=2)


def render(items: Sequence[T], output: str, shape: Shape[T]) -> str:
    """A list of items as ``output`` (one of ``OUTPUTS``)."""
    if output in ("json", "yaml"):
        return dump({"apiVersion": "v1", "kind": "List", "items": [shape.document(i) for i in items]}, output)
    if output == "name":
        return "\n".join(f"{shape.kind}/{shape.name(i)}" for i in items)
    columns = shown(output, shape)
    return table([c.header for c in columns], [[c.cell(i) for c in columns] for i in items])


def shown(output: str, shape: Shape[T]) -> list[Column[T]]:
    """The columns ``output`` (table or wide) prints."""
    return [c for c in shape.columns if output == "wide" or not c.wide]


def echo(text: str) -> None:
    """Print ``text`` unless it is empty (``-o name`` of nothing prints nothing, not a blank line)."""
    if text:
        click.echo(text)


def render_one(item: T, output: str, shape: Shape[T]) -> str:
    """One item (``get NAME``): its document itself for json/yaml, else a one-row list."""
    if output in ("json", "yaml"):
        return dump(shape.document(item), output)
    return render([item], output, shape)
