"""YAML documents that remember where each value came from, so errors name the line.

``load_documents(text)`` returns each document with a map from field path
(``spec.template.spec.ports[0].portPolicy``, the same paths ``ValidationError`` uses) to its line.
``doc.locate(error)`` adds the line of the deepest path that exists in the source;
``fleetmatch.documents`` decodes the documents and locates every error this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from fleetmatch.errors import ValidationError


@dataclass(frozen=True, slots=True)
class SourceDocument:
    data: Any
    lines: dict[str, int]
    """Field path -> 1-based line number."""
    source: str = "<input>"

    def locate(self, error: ValidationError) -> ValidationError:
        """``error`` with the line of its field (or of the closest enclosing field that exists)."""
        path = error.field
        while path:
            if path in self.lines:
                return ValidationError(error.field, error.message, line=self.lines[path])
            path = _parent(path)
        return ValidationError(error.field, error.message, line=self.lines.get("", 1))


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _convert(node: yaml.Node, path: str, lines: dict[str, int], loader: yaml.SafeLoader) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child = _join(path, str(key))
            if key in out:
                raise ValidationError(child, "duplicate key", line=key_node.start_mark.line + 1)
            lines[child] = key_node.start_mark.line + 1  # errors point at the key
            out[key] = _convert(value_node, child, lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, f"{path}[{i}]", lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_documents(text: str, source: str = "<input>") -> list[SourceDocument]:
    """Every non-empty document in ``text``; a YAML syntax error becomes a ``ValidationError`` with its line."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ValidationError("", f"{source}: invalid YAML: {exc.problem}", line=line) from None
    docs = []
    for node in nodes:
        lines: dict[str, int] = {}
        try:
            data = _convert(node, "", lines, yaml.SafeLoader(""))
        except ValidationError as exc:
            raise ValidationError(exc.field, f"{source}: {exc.message}", line=exc.line) from None
        docs.append(SourceDocument(data, lines, source))
    return docs
