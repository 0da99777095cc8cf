"""Game logs on a node: rotated when large (the writer keeps appending), the newest kept of the finished."""

from __future__ import annotations

import os
import time
from pathlib import Path

from allocator.gamelogs import last_line, prune, rotate_if_large


def test_a_large_log_keeps_its_tail_and_the_writer_appends_at_the_new_end(tmp_path: Path) -> None:
    path = tmp_path / "gs-1.log"
    with path.open("ab") as writer:  # the game's stdout, as the node agent opens it
        writer.write(b"a" * 600 + b"b" * 400)
        writer.flush()
        assert rotate_if_large(path, max_bytes=800)
        writer.write(b"after")
        writer.flush()
    assert (tmp_path / "gs-1.log.1").read_bytes() == b"a" * 0 + (b"a" * 600 + b"b" * 400)[-400:]
    assert path.read_bytes() == b"after"  # no hole where the old content was
    assert not rotate_if_large(path, max_bytes=800)


def test_only_the_newest_logs_of_finished_servers_are_kept(tmp_path: Path) -> None:
    now = time.time()
    for i in range(6):
        log = tmp_path / f"gs-{i}.log"
        log.write_text(f"server {i}\n")
        os.utime(log, (now + i, now + i))
    (tmp_path / "gs-0.log.1").write_text("rotated\n")
    os.utime(tmp_path / "gs-0.log.1", (now, now))
    gone = prune(tmp_path, running={"gs-0"}, max_files=2)
    assert sorted(p.name for p in gone) == ["gs-1.log", "gs-2.log", "gs-3.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gs-0.log", "gs-0.log.1", "gs-4.log", "gs-5.log"]


def test_the_last_line_a_game_wrote(tmp_path: Path) -> None:
    path = tmp_path / "gs.log"
    path.write_text("starting\nTraceback (most recent call last):\nKeyError: 'PORT'\n\n")
    assert last_line(path) == "KeyError: 'PORT'"
    assert last_line(tmp_path / "missing.log") == ""
