"""Game logs on a node: rotated in generations when large (the writer keeps appending), and the logs
of finished servers deleted when old or beyond the newest few."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from allocator.gamelogs import expired, generation, last_line, prune, remove, rotate_if_large


def test_a_large_log_keeps_its_last_max_bytes_and_the_writer_appends_at_the_new_end(tmp_path: Path) -> None:
    path = tmp_path / "gs-1.log"
    with path.open("ab") as writer:  # the game's stdout, as the node agent opens it
        writer.write(b"a" * 600 + b"b" * 400)
        writer.flush()
        assert rotate_if_large(path, max_bytes=800, generations=2)
        writer.write(b"after")
        writer.flush()
    assert (tmp_path / "gs-1.log.1").read_bytes() == b"a" * 400 + b"b" * 400
    assert path.read_bytes() == b"after"  # no hole where the old content was
    assert not rotate_if_large(path, max_bytes=800, generations=2)


def test_generations_shift_and_the_oldest_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gs.log"
    for round_ in range(5):
        path.write_bytes(str(round_).encode() * 20)
        assert rotate_if_large(path, max_bytes=10, generations=3)
    assert [generation(path, n).read_bytes() for n in (1, 2, 3)] == [b"4" * 10, b"3" * 10, b"2" * 10]
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gs.log", "gs.log.1", "gs.log.2", "gs.log.3"]


def test_a_lowered_generation_count_drops_the_part_beyond_it(tmp_path: Path) -> None:
    path = tmp_path / "gs.log"
    for n in (1, 2, 3):
        generation(path, n).write_text(f"old {n}")
    path.write_bytes(b"x" * 20)
    assert rotate_if_large(path, max_bytes=10, generations=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gs.log", "gs.log.1", "gs.log.2"]
    assert generation(path, 2).read_text() == "old 1"


def test_zero_generations_only_empties_the_log(tmp_path: Path) -> None:
    path = tmp_path / "gs.log"
    path.write_bytes(b"x" * 20)
    assert rotate_if_large(path, max_bytes=10, generations=0)
    assert [p.name for p in tmp_path.iterdir()] == ["gs.log"] and path.read_bytes() == b""


@pytest.mark.parametrize(
    ("max_files", "max_age", "gone"),
    [
        pytest.param(10, 1000.0, set(), id="all-young-and-few"),
        pytest.param(2, 1000.0, {"d"}, id="beyond-the-newest-two"),
        pytest.param(10, 25.0, {"c", "d"}, id="older-than-max-age"),
        pytest.param(0, 1000.0, {"b", "c", "d"}, id="none-kept"),
    ],
)
def test_which_finished_servers_logs_expire(max_files: int, max_age: float, gone: set[str]) -> None:
    last_written = {"a": 100.0, "b": 90.0, "c": 70.0, "d": 10.0}  # "a" is running: never expires
    assert expired(last_written, {"a"}, max_files=max_files, max_age=max_age, now=100.0) == gone


def test_prune_deletes_every_generation_of_expired_servers(tmp_path: Path) -> None:
    now = time.time()
    for i in range(6):
        log = tmp_path / f"gs-{i}.log"
        log.write_text(f"server {i}\n")
        os.utime(log, (now - 100 + i, now - 100 + i))
    (tmp_path / "gs-1.log.1").write_text("rotated\n")
    os.utime(tmp_path / "gs-1.log.1", (now - 100, now - 100))
    (tmp_path / "gs-0.log.1").write_text("rotated, running\n")
    gone = prune(tmp_path, running={"gs-0"}, max_files=2, max_age=1000.0, now=now)
    assert sorted(p.name for p in gone) == ["gs-1.log", "gs-1.log.1", "gs-2.log", "gs-3.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gs-0.log", "gs-0.log.1", "gs-4.log", "gs-5.log"]
    gone = prune(tmp_path, running={"gs-0"}, max_files=2, max_age=10.0, now=now)
    assert sorted(p.name for p in gone) == ["gs-4.log", "gs-5.log"]


def test_remove_takes_the_generations_too(tmp_path: Path) -> None:
    path = tmp_path / "gs.log"
    for n in range(3):
        generation(path, n).write_text("x")
    (tmp_path / "other.log").write_text("y")
    remove(path, generations=2)
    assert [p.name for p in tmp_path.iterdir()] == ["other.log"]


def test_the_last_line_a_game_wrote(tmp_path: Path) -> None:
    path = tmp_path / "gs.log"
    path.write_text("starting\nTraceback (most recent call last):\nKeyError: 'PORT'\n\n")
    assert last_line(path) == "KeyError: 'PORT'"
    assert last_line(tmp_path / "missing.log") == ""
    assert rotate_if_large(path, max_bytes=30, generations=1)
    assert last_line(path) == "KeyError: 'PORT'"  # just rotated: found in .log.1
