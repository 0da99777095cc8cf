"""The code blocks of the user docs (README.md, docs/*.md) and the shell commands in them.

Conventions the docs follow so that their commands can be run as written:

- Every fenced block names its language (```sh, ```python, ```text...), so no command hides in an
  untagged block.
- In a ```sh / ```bash / ```shell block every line is a command; `\\` continues it on the next
  line; a line starting with `#` is a comment or sample output. In a ```console block only lines
  starting with `$ ` are commands, the rest is output.
- A trailing `# ... exits N ...` comment says the command fails on purpose with status N.
- A block whose info string carries a file name after the language (```json alloc.json) is that
  file: commands of the same document read it by that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL = frozenset({"sh", "bash", "shell"})
_FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$")
_EXITS = re.compile(r"\bexits? (\d+)\b")


def user_docs() -> list[Path]:
    """README.md first, then docs/*.md by name."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block; ``line`` is the 1-based line of its opening fence."""

    doc: str
    line: int
    lang: str
    name: str | None
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


@dataclass(frozen=True, slots=True)
class Command:
    """One shell command as written (continuations joined, trailing comment removed)."""

    doc: str
    line: int
    text: str
    comment: str
    background: bool

    @property
    def expected_status(self) -> int:
        """0, or what a `# exits N` comment promises."""
        found = _EXITS.search(self.comment)
        return int(found.group(1)) if found else 0

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file; an unclosed fence is an error naming its line."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{rel(path)}:{start + 1}: code block never closed")
        words = info.split()
        found.append(
            Block(rel(path), start + 1, words[0] if words else "", words[1] if len(words) > 1 else None, tuple(body))
        )
        i += 1
    return found


def split_comment(line: str) -> tuple[str, str]:
    """``(command, comment)``: the comment starts at a `#` outside quotes after a blank (as in sh)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def commands(block: Block) -> list[Command]:
    """The commands of a shell or console block (none for other languages)."""
    if block.lang not in SHELL and block.lang != "console":
        return []
    found: list[Command] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.lines, start=block.line + 1):
        line = raw.strip()
        if not pending:
            if block.lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not line or line.startswith("#"):
                continue
            start = offset
        text, comment = split_comment(line)
        if text.endswith("\\"):
            pending.append(text[:-1].strip())
            continue
        joined = " ".join([*pending, text])
        pending = []
        background = joined.endswith("&") and not joined.endswith("&&")
        found.append(Command(block.doc, start, joined.removesuffix("&").strip(), comment, background))
    if pending:
        raise ValueError(f"{block.doc}:{start}: a command ends with `\\` at the end of its block")
    return found
