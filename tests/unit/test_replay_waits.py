"""``loadtest.replay_waits``: a run's tickets replayed through the old and the new wait estimator."""

from __future__ import annotations

from loadtest.replay_waits import Record, best_single_figure, bounds, dump_records, first_pass, load_records, replay
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
    far_under = {name: result[name]["buckets"][0]["count"] for name in ("old", "new")}  # under by over 50 %
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


def test_the_best_single_figure_covers_the_most_waits_it_can() -> None:
    assert best_single_figure([]) == 0
    assert best_single_figure([4.0]) == 1
    assert best_single_figure([4.0, 5.0, 6.0]) == 3  # 5 is within 25 % of each
    assert best_single_figure([1.0, 2.0, 3.0, 10.0]) == 2  # 2.4 for 2 and 3; 1 and 10 have nothing in common
    assert best_single_figure([3.0, 5.0]) == 2  # 3.75 is within 25 % of both: the ends count
    assert best_single_figure([3.0, 5.1]) == 1
    assert best_single_figure([3.0, 5.1], tolerance=0.26) == 2
    assert best_single_figure([4.0, 6.0]) == 2  # [3, 5] and [4.5, 7.5] share 4.5-5
    assert best_single_figure([0.001, 0.04, 0.05]) == 3  # all count as 50 ms


def test_first_pass_tickets_are_those_matched_at_the_next_match_time() -> None:
    records = [record(1, 0.0, 0.5), record(2, 0.2, 0.3), record(3, 0.1, 1.4), record(4, 1.0, 0.5), record(5, 0.3, None)]
    # matches came at 0.5 (1 and 2) and 1.5 (3 and 4): 3 arrived before 0.5 and waited for the next
    assert first_pass(records) == {"q.1", "q.2", "q.4"}


def test_bounds_judge_the_same_tickets_as_the_estimators() -> None:
    # arrivals in one slice: two matched at their first pass, two that waited 8 and 10 s
    records = [record(1, 0.0, 0.5), record(2, 0.2, 0.3), record(3, 0.1, 7.9), record(4, 0.3, 9.7)]
    judged = [(records[0], 0.5), (records[1], 9.0), (records[2], 8.0), (records[3], 1.0), (record(5, 0.4, 2.0), None)]
    found = bounds(judged)
    assert found["estimated"] == 4  # the unestimated one is not judged
    assert found["sliceBest"] == 2  # 0.5 and 0.3 share no figure with 8 and 10; 8-ish covers both of those
    assert found["firstPassExact"] == 3  # 1 and 2 exact; 3's estimate of 8 was right, 4's of 1 was not
    assert found["firstPassExactRestSliceBest"] == 4
    assert bounds([])["sliceBest"] == 0


def test_a_replay_prints_the_bounds_beside_the_estimators() -> None:
    records = [record(i, i / 2, 1.0) for i in range(120)]
    result = replay(records, None)
    assert result["bounds"]["estimated"] == result["new"]["estimated"]
    assert result["bounds"]["sliceBest"] == result["bounds"]["estimated"] > 0  # one wait for all: a figure fits all
