"""The Python, YAML and JSON blocks of the docs are valid as shown.

Python compiles as a module: `await` and `async with` only inside an `async def`, unless the block's
first line is a comment saying it runs in the asyncio REPL (`python -m asyncio`), where top-level
await is allowed. Names are not resolved (a snippet may use the reader's own functions), imports are. A YAML block of
whole documents (with a `kind`) is checked by the parser that reads that kind, so a documented
field that does not exist (any more) fails; fragments only need to parse.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable

import pytest
import yaml

from fleetmatch.manifests import parse_resources
from loadtest.scenario import parse_scenario
from matchmaker.rules import parse_queues
from tests.docs.markdown import Block, blocks, user_docs

ASYNCIO_REPL = "python -m asyncio"
PARSERS: dict[str, Callable[[str, str], object]] = {
    "Fleet": lambda text, source: parse_resources(text, source=source),
    "FleetAutoscaler": lambda text, source: parse_resources(text, source=source),
    "Queue": parse_queues,
    "LoadTest": parse_scenario,
}


def of(*langs: str) -> list[Block]:
    return [block for doc in user_docs() for block in blocks(doc) if block.lang in langs]


def where(block: Block) -> str:
    return f"{block.doc}:{block.line}"


@pytest.mark.parametrize("block", of("python", "py"), ids=where)
def test_python_block_compiles(block: Block) -> None:
    first = block.lines[0] if block.lines else ""
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if first.startswith("#") and ASYNCIO_REPL in first else 0
    try:
        compile(block.text, where(block), "exec", flags=flags, dont_inherit=True)
    except SyntaxError as exc:
        pytest.fail(f"{where(block)} (block line {exc.lineno}): {exc.msg}", pytrace=False)


@pytest.mark.parametrize("block", of("python", "py"), ids=where)
def test_python_block_imports_exist(block: Block) -> None:
    """What a snippet imports is there: a renamed module or class fails here, not in a reader's hands."""
    tree = ast.parse(block.text)
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    for node in imports:
        try:
            exec(compile(ast.Module(body=[node], type_ignores=[]), where(block), "exec"), {})
        except ImportError as exc:
            pytest.fail(f"{where(block)} (block line {node.lineno}): {exc}", pytrace=False)


@pytest.mark.parametrize("block", of("yaml", "yml"), ids=where)
def test_yaml_block_parses(block: Block) -> None:
    try:
        documents = list(yaml.safe_load_all(block.text))
    except yaml.YAMLError as exc:
        pytest.fail(f"{where(block)}: {exc}", pytrace=False)
    assert documents, f"{where(block)}: an empty YAML block"
    kinds = {doc.get("kind") for doc in documents if isinstance(doc, dict)}
    if kinds == {None}:
        return  # a fragment of a document, shown for its fields
    kind = kinds.pop() if len(kinds) == 1 else None
    assert kind in PARSERS, f"{where(block)}: documents of kind(s) {kinds or {kind}}: one kind per block, with a parser"
    try:
        PARSERS[kind](block.text, where(block))
    except ValueError as exc:  # ValidationError, as the CLI reports it
        pytest.fail(f"{where(block)}: {exc}", pytrace=False)


@pytest.mark.parametrize("block", of("json"), ids=where)
def test_json_block_parses(block: Block) -> None:
    try:
        json.loads(block.text)
    except ValueError as exc:
        pytest.fail(f"{where(block)}: {exc}", pytrace=False)
