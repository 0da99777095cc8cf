"""The Python, YAML and JSON blocks of the docs are valid as shown.

Python compiles as a module: `await` and `async with` only inside an `async def`, unless the block's
first line is a comment saying it runs in the asyncio REPL (`python -m asyncio`), where top-level
await is allowed. Names are not resolved: a snippet may use the reader's own functions.
"""

from __future__ import annotations

import ast
import json

import pytest
import yaml

from tests.docs.markdown import Block, blocks, user_docs

ASYNCIO_REPL = "python -m asyncio"


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


@pytest.mark.parametrize("block", of("yaml", "yml"), ids=where)
def test_yaml_block_parses(block: Block) -> None:
    try:
        documents = list(yaml.safe_load_all(block.text))
    except yaml.YAMLError as exc:
        pytest.fail(f"{where(block)}: {exc}", pytrace=False)
    assert documents, f"{where(block)}: an empty YAML block"


@pytest.mark.parametrize("block", of("json"), ids=where)
def test_json_block_parses(block: Block) -> None:
    try:
        json.loads(block.text)
    except ValueError as exc:
        pytest.fail(f"{where(block)}: {exc}", pytrace=False)
