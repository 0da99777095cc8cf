"""``loadtest.replay_waits``: a run's tickets replayed through the old and the new wait estimator."""

from __future__ import annotations

from loadtest.replay_waits import Record, dump_records, load_records, replay
from matchmaker.models import Player, Ticket

T0 = 1_800_000_000.0


def record(i: int, at: float, waited: float | None) -> Record:
    player = Player(f"p{i}")
    ticket = Ticket(id=f"q.{i}", queue="q", owner=player.id, players=(player,), enqueued_at=T0 + at)
    return Record(ticket, None if waited is None else T0 + at + waited)


def test_a_queue_that_slows_down_is_caught_by_the_new_estimator_only() -> None:
    # 2 players a second arrive; the first minute they match in 1 s, then the queue backs up:
    # everyone after waits behind all who came before, at half the pace
    records = [record(i, i / 2, 1.0) for i in range(120)]
    records += [record(120 + i, 60 + i / 2, 1.0 + i / 2) for i in range(120)]
    records.append(record(999, 30, None))  # never matched: no truth, not judged
    result = replay(records, None)
    old, new = result["old"], result["new"]
    assert old["matched"] == new["matched"] == 240
    far_under = {name: figures["buckets"][0]["count"] for name, figures in result.items()}  # under by over 50 %
    assert old["buckets"][0]["label"] == "under by more than 50 %"
    assert far_under["new"] < far_under["old"] / 2  # recent waits lag the backlog; the players ahead do not


def test_no_tickets_no_figures() -> None:
    assert replay([], None)["new"]["withinPercent"] is None


def test_saved_records_replay_as_the_store_left_them() -> None:
    records = {"q": [record(1, 0, 2.0), Record(record(2, 1, None).ticket, None, T0 + 30)]}
    loaded = load_records(dump_records(records))
    assert loaded == records
    assert replay(loaded["q"], None) == replay(records["q"], None)


def test_a_cancelled_ticket_leaves_the_depth_when_it_left() -> None:
    gone = Record(record(3, 0, None).ticket, None, T0 + 10)
    assert gone.waiting_at(T0 + 9) and not gone.waiting_at(T0 + 10)
    matched = record(4, 0, 5.0)
    assert matched.waiting_at(T0 + 4) and not matched.waiting_at(T0 + 5)
