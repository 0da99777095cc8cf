"""Crash-loop back-off, pure: failures before Ready in a row double the wait, from three the fleet
starts one server at a time and reports the condition; a server made during the streak that runs,
or a new template, ends it."""

from __future__ import annotations

from allocator import crashloop
from allocator.crashloop import Streak, allowed_creations, condition, observe
from fleetmatch.models import (
    ERROR_ANNOTATION,
    FAILED_BEFORE_READY_ANNOTATION,
    GameServer,
    GameServerState,
    ObjectMeta,
)

S = GameServerState


def member(name: str, state: S, created: float, *, failed: bool = False, why: str = "exited with code 1") -> GameServer:
    annotations = {FAILED_BEFORE_READY_ANNOTATION: "true", ERROR_ANNOTATION: why} if failed else {}
    gs = GameServer(metadata=ObjectMeta(name=name, annotations=annotations, creation_timestamp=created))
    return gs.with_status(state=state)


def test_each_failure_before_ready_doubles_the_wait_and_is_counted_once() -> None:
    streak = Streak(template="t1")
    crashed = [member("a", S.UNHEALTHY, 10.0, failed=True)]
    streak = observe(streak, "t1", crashed, now=11.0)
    assert (streak.failures, streak.delay, streak.next_attempt()) == (1, 1.0, 12.0)
    assert observe(streak, "t1", crashed, now=11.5) == streak  # seen again: not counted again
    streak = observe(streak, "t1", [member("b", S.ERROR, 12.0, failed=True)], now=13.0)
    assert (streak.failures, streak.delay) == (2, 2.0)
    for i in range(10):
        streak = observe(streak, "t1", [member(f"c{i}", S.UNHEALTHY, 20.0 + i, failed=True)], now=20.0 + i)
    assert streak.delay == crashloop.MAX_SECONDS


def test_unhealthy_after_ready_is_not_a_crash_loop() -> None:
    streak = observe(Streak(template="t1"), "t1", [member("a", S.UNHEALTHY, 1.0)], now=50.0)
    assert streak.failures == 0
    assert allowed_creations(streak, 3, [], now=50.0) == 3


def test_creations_wait_for_the_back_off_then_one_probe_at_a_time_when_looping() -> None:
    streak = Streak(template="t1", failures=1, started=10.0, last=10.0)
    assert allowed_creations(streak, 4, [], now=10.5) == 0
    assert allowed_creations(streak, 4, [], now=11.0) == 4  # not looping yet: all of them
    looping = Streak(template="t1", failures=3, started=10.0, last=20.0)
    assert allowed_creations(looping, 4, [], now=23.0) == 0  # 4 s wait
    assert allowed_creations(looping, 4, [], now=24.0) == 1  # a probe
    probing = [member("p", S.SCHEDULED, 24.0)]
    assert allowed_creations(looping, 4, probing, now=30.0) == 0  # the probe is still starting


def test_a_server_made_during_the_streak_that_runs_ends_it_and_an_older_one_does_not() -> None:
    streak = Streak(template="t1", failures=5, started=100.0, last=120.0, reason="boom")
    assert observe(streak, "t1", [member("old", S.READY, 50.0)], now=121.0).failures == 5
    assert observe(streak, "t1", [member("new", S.READY, 110.0)], now=121.0).failures == 0
    assert observe(streak, "t2", [], now=121.0).failures == 0  # a new template starts afresh


def test_the_condition_while_looping_keeps_its_transition_time() -> None:
    assert condition(Streak(failures=2, last=5.0), None) is None
    looping = Streak(failures=4, last=50.0, reason="game process exited with code 1")
    reported = condition(looping, since=42.0)
    assert reported is not None and reported.type == "CrashLoopBackOff" and reported.status == "True"
    assert reported.last_transition_time == 42.0 and "exited with code 1" in reported.message
