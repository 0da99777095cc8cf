"""Match functions by name: ``default`` is ``matchmaker.matching.find_matches``; others are plugins.

A plugin is any callable ``(pool, queue, now) -> list[Proposal]`` published by an installed
distribution under the entry-point group ``fleetmatch.match_functions``, e.g. in its pyproject::

    [project.entry-points."fleetmatch.match_functions"]
    fifo = "mygame.matching:fifo"

and chosen per queue with ``spec.matchFunction: fifo``. Queue rules keep only the name; the
matchmaker resolves it (and imports the plug-in) when its directors start (``matchmaker.app``), so
a typo or a broken plug-in fails at start-up with the field named, not at the first tick. A plug-in
must honour the same contract as the default: a pure function of its arguments, no ticket in two
proposals, parties never split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol

from fleetmatch.errors import ValidationError
from matchmaker.matching import find_matches
from matchmaker.models import Proposal, Ticket
from matchmaker.rules import DEFAULT_MATCH_FUNCTION, Queue

GROUP = "fleetmatch.match_functions"
DEFAULT = DEFAULT_MATCH_FUNCTION


class MatchFunction(Protocol):
    def __call__(self, pool: Sequence[Ticket], queue: Queue, now: float, /) -> list[Proposal]: ...


Matcher = Callable[[Sequence[Ticket], float], list[Proposal]]
"""A match function bound to its queue: a pool snapshot and ``now`` in, proposals out."""

_loaded: dict[str, MatchFunction] = {}


def _entry_points(name: str | None = None) -> list[EntryPoint]:
    found = entry_points(group=GROUP)
    return sorted(found.select(name=name) if name is not None else found, key=lambda ep: ep.value)


def available() -> list[str]:
    """Names a queue may use: ``default`` and every installed plugin."""
    return [DEFAULT, *sorted({ep.name for ep in _entry_points()} - {DEFAULT})]


def match_function(name: str) -> MatchFunction:
    """The function named ``name``; ``ValidationError`` on ``matchFunction`` if there is none or it
    cannot be imported. Loaded plugins are remembered: a tick does not scan the installed packages."""
    if name == DEFAULT:
        return find_matches
    fn = _loaded.get(name)
    if fn is not None:
        return fn
    found = _entry_points(name)
    if not found:
        known = ", ".join(available())
        raise ValidationError(
            "matchFunction", f"unknown match function {name!r} (entry-point group {GROUP!r}; known: {known})"
        )
    if len({ep.value for ep in found}) > 1:
        targets = ", ".join(ep.value for ep in found)
        raise ValidationError("matchFunction", f"{name!r} is registered by several packages ({targets})")
    try:
        loaded = found[0].load()
    except Exception as exc:  # a plugin may fail in any way on import; say which and why
        raise ValidationError(
            "matchFunction", f"match function {name!r} ({found[0].value}) cannot be loaded: {exc!r}"
        ) from exc
    if not callable(loaded):
        raise ValidationError("matchFunction", f"{name!r} ({found[0].value}) is not callable")
    _loaded[name] = loaded
    return loaded  # type: ignore[no-any-return]
