"""Label selectors as kubectl's ``-l`` takes them: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ANDed by commas.

Pure: ``parse`` turns the text into requirements (``SelectorError`` naming what is wrong), ``matches``
checks a label map. Set-based forms (``k in (a,b)``) are not supported and say so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

# a label key: an optional DNS prefix and a name; values are the name part, or empty
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class SelectorError(ValueError):
    """A selector that does not parse; the message says which part and why."""


class Op(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    NOT_EXISTS = "!"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: Op
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op is Op.EQUALS:
            return labels.get(self.key) == self.value
        if self.op is Op.NOT_EQUALS:  # as in Kubernetes: a missing key is "not equal"
            return labels.get(self.key) != self.value
        if self.op is Op.EXISTS:
            return self.key in labels
        return self.key not in labels


def _key(text: str, term: str) -> str:
    if not _KEY.match(text):
        raise SelectorError(f"{term!r}: {text!r} is not a valid label key")
    return text


def _term(term: str) -> Requirement:
    if " in " in f" {term} " or " notin " in f" {term} " or "(" in term:
        raise SelectorError(f"{term!r}: set-based selectors (in, notin) are not supported")
    for op, token in ((Op.NOT_EQUALS, "!="), (Op.EQUALS, "=="), (Op.EQUALS, "=")):
        key, sep, value = term.partition(token)
        if sep:
            key, value = key.strip(), value.strip()
            if not _VALUE.match(value):
                raise SelectorError(f"{term!r}: {value!r} is not a valid label value")
            return Requirement(_key(key, term), op, value)
    if term.startswith("!"):
        return Requirement(_key(term[1:].strip(), term), Op.NOT_EXISTS)
    return Requirement(_key(term, term), Op.EXISTS)


def parse(text: str) -> tuple[Requirement, ...]:
    """The requirements of ``text``; an empty selector matches everything."""
    terms = [t.strip() for t in text.split(",")]
    if terms == [""]:
        return ()
    if "" in terms:
        raise SelectorError(f"{text!r}: empty requirement between commas")
    return tuple(_term(t) for t in terms)


def matches(requirements: Sequence[Requirement], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)
