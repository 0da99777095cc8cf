"""Every table of the user docs renders as one: a table begins with a header row and its delimiter
row, and has no row cut off from it by a blank line (such a row shows as plain text)."""

from __future__ import annotations

import re

from tests.docs.markdown import user_docs

_DELIMITER = re.compile(r"^\|( *:?-+:? *\|)+ *$")


def broken_rows(text: str) -> list[int]:
    """Line numbers of table rows that do not belong to a table with a header and delimiter row."""
    lines = text.splitlines()
    broken = []
    fenced = False
    in_table = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("|"):
            in_table = False
            continue
        if in_table:
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _DELIMITER.match(following):
            in_table = True
        else:
            broken.append(i + 1)
    return broken


def test_a_row_cut_off_from_its_table_is_found() -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n\n```\n| in code |\n```\n"
    assert broken_rows(text) == [5]


def test_every_table_of_the_docs_has_its_header() -> None:
    broken = {str(path): rows for path in user_docs() if (rows := broken_rows(path.read_text()))}
    assert not broken, broken
