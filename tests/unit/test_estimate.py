"""The estimated wait (``matchmaker.estimate``): keys, decay, fallback to coarser keys, encoding."""

from __future__ import annotations

import math

import pytest

from matchmaker.estimate import (
    DEPTH_PREFIX,
    DEPTH_STALE_SECONDS,
    HALF_LIFE_SECONDS,
    LONGEST_FACTOR,
    MAX_CELLS,
    PEAK_HALF_LIFE_SECONDS,
    PEAK_PREFIX,
    PUBLISH_SLACK_SECONDS,
    QUEUE_WEIGHT,
    RATE_HALF_LIFE_SECONDS,
    RATE_PREFIX,
    Cell,
    Depth,
    Peak,
    Rate,
    Summary,
    band,
    decode_cells,
    decode_summary,
    depths_of,
    estimate,
    expected_remaining,
    keys_of,
    longest_wait,
    merge,
    merge_peaks,
    merge_rates,
    publish,
    queue_term,
    read_again_at,
    remaining,
)
from matchmaker.models import Player, Ticket
from matchmaker.rules import Queue, parse_queues

NOW = 1_800_000_000.0
QUEUE = parse_queues(
    """
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: ranked}
spec:
  teams: {count: 2, maxSize: 2}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 200, widen: {perSecond: 10, max: 600}}
    - {name: ping, type: latency, maxLatencyMs: 80, regions: [eu, us]}
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: arena}}]}
"""
)["ranked"]


def ticket(*skills: float, eu: float = 20, us: float = 90) -> Ticket:
    players = tuple(
        Player(f"p{i}", attributes={"skill": s}, latencies={"eu": eu, "us": us}) for i, s in enumerate(skills)
    )
    return Ticket(id="ranked.1", queue="ranked", owner="p0", players=players, enqueued_at=NOW)


@pytest.mark.parametrize(
    ("skills", "queue", "expected"),
    [
        pytest.param((1500,), QUEUE, "7", id="solo: 1500 // 200"),
        pytest.param((1399.9,), QUEUE, "6", id="just-below"),
        pytest.param((1000, 2000), QUEUE, "7", id="party-average"),
        pytest.param((-1,), QUEUE, "-1", id="negative-rounds-down"),
        pytest.param((1500,), None, "-", id="no-rules"),
    ],
)
def test_band(skills: tuple[float, ...], queue: Queue | None, expected: str) -> None:
    assert band(ticket(*skills), queue) == expected


def test_keys_go_from_band_to_region_to_queue() -> None:
    assert keys_of(ticket(1500, us=10), QUEUE) == ("us|7", "us|*", "*|*")


def cells_of(*waits: float, keys: tuple[str, ...] = ("eu|7", "eu|*", "*|*"), at: float = NOW) -> dict[str, Cell]:
    return merge({}, [(keys, w) for w in waits], at)


def test_the_estimate_is_the_geometric_mean_of_the_band() -> None:
    cells = cells_of(2.0, 8.0, 4.0)
    assert estimate(cells, ("eu|7", "eu|*", "*|*"), NOW) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("samples", "keys", "expected"),
    [
        pytest.param([], ("eu|7", "eu|*", "*|*"), None, id="nothing-yet"),
        pytest.param([(("eu|7", "eu|*", "*|*"), 3.0)] * 2, ("eu|7", "eu|*", "*|*"), None, id="too-few-everywhere"),
        pytest.param(
            [(("eu|3", "eu|*", "*|*"), 10.0)] * 3 + [(("eu|7", "eu|*", "*|*"), 1.0)],
            ("eu|7", "eu|*", "*|*"),
            (10.0**3 * 1.0) ** 0.25,
            id="thin-band-falls-back-to-region",
        ),
        pytest.param(
            [(("us|7", "us|*", "*|*"), 5.0)] * 3,
            ("eu|7", "eu|*", "*|*"),
            5.0,
            id="unknown-region-falls-back-to-queue",
        ),
    ],
)
def test_fallback_to_coarser_keys(
    samples: list[tuple[tuple[str, ...], float]], keys: tuple[str, ...], expected: float | None
) -> None:
    result = estimate(merge({}, samples, NOW), keys, NOW)
    assert result == (None if expected is None else pytest.approx(expected))


def test_samples_decay_so_recent_waits_win() -> None:
    old = cells_of(*[40.0] * 10, at=NOW - 5 * HALF_LIFE_SECONDS)
    new = merge(old, [(("eu|7", "eu|*", "*|*"), 2.0)] * 10, NOW)
    value = estimate({**old, **new}, ("eu|7",), NOW)
    assert value is not None
    weight_old = 10 * 0.5**5
    assert value == pytest.approx(math.exp((weight_old * math.log(40) + 10 * math.log(2)) / (weight_old + 10)))
    assert value < 2.5


def test_an_old_cell_ages_out_without_being_written() -> None:
    cells = cells_of(5.0, 5.0, 5.0, 5.0)
    assert estimate(cells, ("eu|7",), NOW) == pytest.approx(5.0)
    assert estimate(cells, ("eu|7",), NOW + HALF_LIFE_SECONDS) is None  # 4 samples halved: 2 < 3


def test_merge_returns_only_the_changed_cells_and_caps_new_ones() -> None:
    cells = cells_of(1.0, keys=("a", "b"))
    changed = merge(cells, [(("new", "b"), 1.0)], NOW, max_cells=2)
    assert set(changed) == {"b"}
    assert changed["b"].weight == pytest.approx(2.0)


def test_a_zero_wait_counts_as_the_floor() -> None:
    assert estimate(cells_of(0.0, 0.0, 0.0), ("eu|7",), NOW) == pytest.approx(0.05)


def test_cells_round_trip_and_garbage_is_skipped() -> None:
    cell = Cell(2.5, 3.25, NOW)
    assert Cell.decode(cell.encode()) == cell
    fields = {"ok": cell.encode(), "short": "1 2", "words": "a b c", "nan": "nan 1 2", "negative": "-1 0 0"}
    assert decode_cells(fields) == {"ok": cell}


@pytest.mark.parametrize("stored", [Cell(2.5, -3.25, NOW), Depth(12.0, NOW - 30, NOW), Rate(7.5, NOW - 60, NOW)])
@pytest.mark.parametrize("garbage", ["1 2", "1 2 3 4", "a b c", "nan 1 2", "1 inf 2", "-1 0 0", ""])
def test_every_stored_kind_round_trips_and_refuses_garbage(stored: Cell | Depth | Rate, garbage: str) -> None:
    kind = type(stored)
    assert kind.decode(stored.encode()) == stored
    assert kind.decode(garbage) is None


@pytest.mark.parametrize(
    ("expected", "waited", "left"),
    [
        pytest.param(None, 3.0, None, id="no-data"),
        pytest.param(10.0, 0.0, 10.0, id="fresh"),
        pytest.param(10.0, 4.0, 6.0, id="partly-waited"),
        pytest.param(10.0, 25.0, 0.0, id="overdue-floors-at-zero"),
        pytest.param(10.04, -1.0, 10.0, id="clock-skew-counts-as-no-wait"),
    ],
)
def test_remaining(expected: float | None, waited: float, left: float | None) -> None:
    assert remaining(expected, waited) == left


# -- the queue ahead (``expected_remaining``) ------------------------------------------------------

KEYS = ("eu|7", "eu|*", "*|*")


@pytest.mark.parametrize(
    ("enqueued_at", "ahead"),
    [
        pytest.param(NOW + 1, 30.0, id="queued-after-the-count: all ahead"),
        pytest.param(NOW - 10, 15.0, id="half-way: half ahead"),
        pytest.param(NOW - 30, 0.0, id="the-oldest: none ahead"),
        pytest.param(NOW - 99, 0.0, id="older-than-the-oldest: none ahead"),
    ],
)
def test_players_ahead_spread_evenly_since_the_oldest(enqueued_at: float, ahead: float) -> None:
    assert Depth(30.0, NOW - 20, NOW).ahead_of(enqueued_at) == pytest.approx(ahead)


def test_a_steady_rate_is_measured_young_and_old() -> None:
    rates: dict[str, Rate] = {}
    start = NOW
    for second in range(1, 121):  # 8 players matched every second for two minutes
        rates = {**rates, **merge_rates(rates, [(("q",), 8)], start + second)}
        if second == 5:
            assert rates["q"].per_second(start + second) is None  # 40 players over 4 s is not yet a rate
        if second == 15:
            assert rates["q"].per_second(start + second) == pytest.approx(8.0, rel=0.1)
    assert rates["q"].per_second(start + 120) == pytest.approx(8.0, rel=0.1)
    assert rates["q"].per_second(start + 120 + RATE_HALF_LIFE_SECONDS) == pytest.approx(4.0, rel=0.1)  # none since


def test_summary_fields_round_trip_and_garbage_is_skipped() -> None:
    depth, rate, cell = Depth(4.0, NOW - 3, NOW), Rate(6.0, NOW - 9, NOW), Cell(3.0, 1.5, NOW)
    fields = {
        "eu|7": cell.encode(),
        DEPTH_PREFIX + "eu|7": depth.encode(),
        RATE_PREFIX + "eu|7": rate.encode(),
        DEPTH_PREFIX + "bad": "1 2",
        RATE_PREFIX + "worse": "-1 0 0",
    }
    assert decode_summary(fields) == Summary({"eu|7": cell}, {"eu|7": depth}, {"eu|7": rate})
    assert decode_cells(fields) == {"eu|7": cell}  # the old reader never takes a depth for a wait


def test_depths_count_players_by_key_with_the_oldest() -> None:
    depths = depths_of([(("a", "*"), 2, NOW - 5), (("b", "*"), 1, NOW - 9), (("a", "*"), 3, NOW - 1)], NOW)
    assert depths == {"a": Depth(5.0, NOW - 5, NOW), "b": Depth(1.0, NOW - 9, NOW), "*": Depth(6.0, NOW - 9, NOW)}


def test_publish_zeroes_a_key_nobody_waits_in_any_more() -> None:
    before = Summary(depths={"a": Depth(3.0, NOW - 5, NOW - 1), "gone": Depth(0.0, NOW, NOW)})
    fields = publish(before, [(("b",), 2.0, 2)], {"b": Depth(1.0, NOW, NOW)}, NOW)
    after = decode_summary(fields)
    assert {k: d.players for k, d in after.depths.items()} == {"a": 0.0, "b": 1.0}  # "gone" is not rewritten
    assert set(after.waits) == set(after.rates) == {"b"}


def summary_of(players: float, per_second: float, *, waits: tuple[float, ...] = (), depth_at: float = NOW) -> Summary:
    """A queue where ``players`` wait under every key and ``per_second`` players have matched for a minute."""
    rate = Rate(per_second * HALF_LIFE_SECONDS, NOW - HALF_LIFE_SECONDS, NOW)  # exposure of 60 s at 15 s half-life
    rate = Rate(rate.weight * (1 - 0.5**4) * RATE_HALF_LIFE_SECONDS / math.log(2) / HALF_LIFE_SECONDS, rate.since, NOW)
    return Summary(
        waits=cells_of(*waits) if waits else {},
        depths=dict.fromkeys(KEYS, Depth(players, NOW - 10, depth_at)),
        rates=dict.fromkeys(KEYS, rate),
    )


@pytest.mark.parametrize(
    ("summary", "size", "expected"),
    [
        pytest.param(summary_of(40, 4.0), 1, 10.0, id="40-ahead-at-4-per-second"),
        pytest.param(summary_of(2, 4.0), 1, 7 / 4, id="sparse: a match needs 7 more"),
        pytest.param(summary_of(2, 4.0), 4, 4 / 4, id="a party of 4 needs 4 more"),
        pytest.param(summary_of(40, 4.0, depth_at=NOW - DEPTH_STALE_SECONDS - 1), 1, None, id="stale-depth"),
        pytest.param(Summary(depths={"eu|7": Depth(40, NOW, NOW)}), 1, None, id="no-rate-yet"),
    ],
)
def test_queue_term(summary: Summary, size: int, expected: float | None) -> None:
    result = queue_term(summary, KEYS, size=size, needed=8, enqueued_at=NOW + 0.1, now=NOW + 0.1)
    assert result == (None if expected is None else pytest.approx(expected, rel=0.02))


def test_expected_remaining_blends_and_falls_back() -> None:
    both = expected_remaining(
        summary_of(40, 4.0, waits=(2.0, 2.0, 2.0)), KEYS, size=1, needed=8, enqueued_at=NOW, now=NOW
    )
    assert both == pytest.approx(QUEUE_WEIGHT * 10.0 + (1 - QUEUE_WEIGHT) * 2.0, abs=0.1)
    only_recent = expected_remaining(
        Summary(waits=cells_of(2.0, 2.0, 2.0)), KEYS, size=1, needed=8, enqueued_at=NOW, now=NOW
    )
    assert only_recent == pytest.approx(2.0)
    assert expected_remaining(Summary(), KEYS, size=1, needed=8, enqueued_at=NOW, now=NOW) is None


def test_the_queue_term_is_taken_by_region_not_band() -> None:
    by_band = summary_of(40, 4.0, waits=(2.0, 2.0, 2.0))
    thin = Summary(by_band.waits, {"eu|7": by_band.depths["eu|7"]}, {"eu|7": by_band.rates["eu|7"]})
    assert expected_remaining(thin, KEYS, size=1, needed=8, enqueued_at=NOW, now=NOW) == pytest.approx(2.0)


def test_publish_keeps_the_fullest_depths_only() -> None:
    depths = {f"b{i}": Depth(float(i), NOW, NOW) for i in range(1, MAX_CELLS + 11)}
    fields = publish(Summary(), [], depths, NOW)
    kept = decode_summary(fields).depths
    assert len(kept) == MAX_CELLS
    assert min(d.players for d in kept.values()) == 11.0  # the 10 emptiest were left out


def test_every_stored_kind_round_trips_a_peak_too() -> None:
    peak = Peak(42.5, NOW)
    assert Peak.decode(peak.encode()) == peak
    assert Peak.decode("1 2 3") is None and Peak.decode("-1 2") is None
    fields = {PEAK_PREFIX + "eu|*": peak.encode(), PEAK_PREFIX + "bad": "x y"}
    assert decode_summary(fields).peaks == {"eu|*": peak}
    assert decode_cells(fields) == {}  # never read as a wait


def test_a_peak_is_raised_by_a_longer_wait_and_halves_otherwise() -> None:
    peaks = merge_peaks({}, [(("a", "*"), 30.0), (("b", "*"), 10.0)], NOW)
    assert peaks == {"a": Peak(30.0, NOW), "b": Peak(10.0, NOW), "*": Peak(30.0, NOW)}
    later = NOW + PEAK_HALF_LIFE_SECONDS
    assert merge_peaks(peaks, [(("a",), 5.0)], later) == {"a": Peak(15.0, later)}  # decayed, still above 5
    assert merge_peaks(peaks, [(("a",), 40.0)], later) == {"a": Peak(40.0, later)}
    assert merge_peaks(peaks, [(("new",), 1.0)], NOW, max_cells=3) == {}  # full: no new key


def test_publish_writes_the_peaks_of_what_it_matched() -> None:
    fields = publish(Summary(), [(("b", "*"), 12.0, 2)], {}, NOW)
    assert decode_summary(fields).peaks == {"b": Peak(12.0, NOW), "*": Peak(12.0, NOW)}


def test_the_longest_wait_is_the_peak_or_the_oldest_waiting_whichever_is_longer() -> None:
    peak = Peak(30.0, NOW - PEAK_HALF_LIFE_SECONDS)  # 15 s by now
    assert longest_wait(Summary(peaks={"q": peak}), ("r", "q"), NOW) == pytest.approx(15.0)
    old = Summary(peaks={"q": peak}, depths={"q": Depth(4.0, NOW - 50, NOW)})
    assert longest_wait(old, ("q",), NOW) == pytest.approx(50.0)
    empty = Summary(peaks={"q": peak}, depths={"q": Depth(0.0, NOW - 50, NOW)})
    assert longest_wait(empty, ("q",), NOW) == pytest.approx(15.0)  # nobody waits: no oldest
    assert longest_wait(Summary(depths={"q": Depth(4.0, NOW - 50, NOW)}), ("q",), NOW) is None


def test_no_estimate_beyond_the_longest_wait_seen_lately() -> None:
    """In an overloaded queue whose players give up (or are not served first come, first served),
    the players ahead over the rate is far beyond what anyone matched after: the estimate stays
    within a margin of the longest recent wait."""
    keys = ("eu|7", "eu|*", "*|*")
    crowded = summary_of(900.0, 3.0)  # 300 s by the queue term
    uncapped = expected_remaining(crowded, keys, size=1, needed=8, enqueued_at=NOW, now=NOW)
    assert uncapped is not None and uncapped > 200
    capped = Summary(crowded.waits, crowded.depths, crowded.rates, {"eu|*": Peak(40.0, NOW)})  # oldest: 10 s
    now = expected_remaining(capped, keys, size=1, needed=8, enqueued_at=NOW, now=NOW)
    assert now == pytest.approx(LONGEST_FACTOR * 40.0, abs=0.1)
    later = expected_remaining(capped, keys, size=1, needed=8, enqueued_at=NOW - 5, now=NOW)
    assert later == pytest.approx(LONGEST_FACTOR * 40.0 - 5, abs=0.1)  # what it waited comes off


# -- the next pass ---------------------------------------------------------------------------------

PUBLISHED = NOW - 0.2
"""The last pass published 0.2 s ago; passes start every 0.5 s: the next one publishes in 0.3 s."""


def pool_near(*depths: tuple[str, float], rate: float = 8.0, ahead: float = 4.0) -> Summary:
    """A queue whose last pass left ``depths`` ((key, players) each), with ``ahead`` players in
    the region leaving at ``rate`` per second (a queue that clears in half a second)."""
    keys = dict(depths)
    keys.setdefault("eu|*", ahead)
    made = summary_of(0, rate)
    return Summary(
        depths={k: Depth(players, NOW - 3, PUBLISHED) for k, players in keys.items()},
        rates={"eu|*": made.rates["eu|*"]},
    )


def soon(summary: Summary, *, size: int = 1, enqueued_at: float = NOW, now: float = NOW) -> float | None:
    return expected_remaining(
        summary, ("eu|7", "eu|*", "*|*"), size=size, needed=4, enqueued_at=enqueued_at, now=now, tick=0.5
    )


def test_a_ticket_that_completes_a_match_waits_for_the_next_pass() -> None:
    assert soon(pool_near(("eu|7", 3.0))) == pytest.approx(0.3)
    assert soon(pool_near(("eu|6", 1.0), ("eu|8", 2.0))) == pytest.approx(0.3)  # the bands beside it count
    assert soon(pool_near(("eu|5", 3.0), ("eu|9", 3.0))) != pytest.approx(0.3)  # two bands away: out of reach
    assert soon(pool_near(("eu|7", 2.0))) != pytest.approx(0.3)  # one player short
    assert soon(pool_near(("eu|7", 1.0)), size=3) == pytest.approx(0.3)  # a party of 3 needs one more


def test_the_next_pass_is_counted_from_the_last_publish() -> None:
    assert soon(pool_near(("eu|7", 3.0)), enqueued_at=NOW + 0.25, now=NOW + 0.25) == pytest.approx(0.05)
    # the pass is overdue (it is slow, or this frontend holds an old summary): the one after
    assert soon(pool_near(("eu|7", 3.0)), enqueued_at=NOW + 0.4, now=NOW + 0.4) == pytest.approx(0.4)


def test_a_ticket_the_last_pass_saw_and_left_is_not_matched_by_the_next() -> None:
    # a queued ticket asked again: it was counted among the players near itself, and was not matched
    later = soon(pool_near(("eu|7", 3.0)), enqueued_at=PUBLISHED - 1, now=NOW)
    assert later != pytest.approx(0.3)


def test_a_full_fleet_is_not_the_next_pass() -> None:
    # the queue ahead takes 100 s to clear: a match formed at the next pass waits for a server
    crowded = soon(pool_near(("eu|7", 3.0), ahead=800.0))
    assert crowded is not None and crowded > 50
    # without a tick (an unknown queue) the rule is not applied
    summary = pool_near(("eu|7", 3.0))
    without = expected_remaining(summary, ("eu|7", "eu|*", "*|*"), size=1, needed=4, enqueued_at=NOW, now=NOW)
    assert without != pytest.approx(0.3)


def test_a_queue_without_skill_bands_counts_its_region() -> None:
    summary = Summary(depths={"eu|*": Depth(3.0, NOW - 3, PUBLISHED)})
    keys = ("eu|-", "eu|*", "*|*")
    assert expected_remaining(summary, keys, size=1, needed=4, enqueued_at=NOW, now=NOW, tick=0.5) == 0.3
    assert expected_remaining(summary, keys, size=1, needed=5, enqueued_at=NOW, now=NOW, tick=0.5) is None


def test_a_summary_is_read_again_once_the_next_pass_has_published() -> None:
    summary = pool_near(("eu|7", 3.0))
    assert read_again_at(summary, NOW, ttl=1.0, tick=0.5) == pytest.approx(PUBLISHED + 0.5 + PUBLISH_SLACK_SECONDS)
    assert read_again_at(summary, NOW, ttl=0.1, tick=0.5) == pytest.approx(NOW + 0.1)  # the ttl still bounds it
    overdue = NOW + 0.4
    assert read_again_at(summary, overdue, ttl=1.0, tick=0.5) == pytest.approx(overdue + 0.25)
    assert read_again_at(summary, NOW, ttl=1.0, tick=None) == NOW + 1.0
    assert read_again_at(Summary(), NOW, ttl=1.0, tick=0.5) == NOW + 1.0
