"""How commands are read out of a Markdown file (pure: a temporary file, no stack)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import markdown
from tests.docs.markdown import blocks, commands, split_comment


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("fleetmatch gs list", ("fleetmatch gs list", "")),
        ("fleetmatch gs list   # NAME STATE", ("fleetmatch gs list", "NAME STATE")),
        ('curl -d \'{"a": "#x"}\' http://h/#frag # c', ('curl -d \'{"a": "#x"}\' http://h/#frag', "c")),
        ("echo a#b", ("echo a#b", "")),
        ("# only a comment", ("", "only a comment")),
    ],
)
def test_split_comment(line: str, expected: tuple[str, str]) -> None:
    assert split_comment(line) == expected


def parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> list[markdown.Command]:
    monkeypatch.setattr(markdown, "REPO", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    return [command for block in blocks(doc) for command in commands(block)]


def test_shell_blocks_give_commands_with_their_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "intro\n"
        "```sh\n"
        "fleetmatch ticket create -q duel -p a &   # in the background\n"
        "# NAME   STATE   (sample output)\n"
        "\n"
        "curl -s -H 'A: b' \\\n"
        "    http://127.0.0.1:9180/x   # two lines\n"
        "fleetmatch fleet apply -f bad.yaml   # exits 2: the field is named\n"
        "```\n"
        "```python\n"
        "print('not a command')\n"
        "```\n"
    )
    found = parsed(tmp_path, monkeypatch, text)
    assert [(c.line, c.text, c.background, c.expected_status) for c in found] == [
        (3, "fleetmatch ticket create -q duel -p a", True, 0),
        (6, "curl -s -H 'A: b' http://127.0.0.1:9180/x", False, 0),
        (8, "fleetmatch fleet apply -f bad.yaml", False, 2),
    ]
    assert found[0].where == "doc.md:3"


def test_console_blocks_run_only_dollar_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = parsed(tmp_path, monkeypatch, "```console\n$ fleetmatch gs list\nNAME  STATE\n$ true && true\n```\n")
    assert [c.text for c in found] == ["fleetmatch gs list", "true && true"]
    assert not found[1].background


def test_named_blocks_and_untagged_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(markdown, "REPO", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text('```json alloc.json\n{"spec": {}}\n```\n\n  ```\n  indented\n  ```\n')
    named, plain = blocks(doc)
    assert (named.lang, named.name, named.text) == ("json", "alloc.json", '{"spec": {}}\n')
    assert (plain.lang, plain.name, plain.lines, plain.line) == ("", None, ("indented",), 5)


def test_an_unclosed_block_names_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(markdown, "REPO", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text("text\n```sh\nfleetmatch up\n")
    with pytest.raises(ValueError, match=r"doc\.md:2: code block never closed"):
        blocks(doc)
