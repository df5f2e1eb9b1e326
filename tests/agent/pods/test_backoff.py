"""Restart back-off: immediate first restart, then a delay doubling up to the
maximum, counted from when the container finished; a fresh start after
reset_after seconds without a restart. And Go-style durations for messages."""

from __future__ import annotations

from agent.pods.backoff import BackoffTracker, RestartBackoff, format_duration

POLICY = RestartBackoff(initial=10.0, maximum=40.0, reset_after=100.0)
KEY = ("uid", "app")


def test_the_defaults_are_kubelets():
    assert RestartBackoff() == RestartBackoff(initial=10.0, maximum=300.0, reset_after=600.0)


def test_the_first_restart_is_immediate():
    assert BackoffTracker(POLICY).remaining(KEY, since=1000.0, now=1000.0) == 0.0


def test_each_restart_doubles_the_next_delay_up_to_the_maximum():
    tracker = BackoffTracker(POLICY)
    assert [tracker.next(KEY, now=1000.0 + i) for i in range(5)] == [10.0, 20.0, 40.0, 40.0, 40.0]


def test_the_delay_counts_from_when_the_container_finished():
    tracker = BackoffTracker(POLICY)
    tracker.next(KEY, now=1000.0)  # restarted once: the next restart waits 10 s
    assert tracker.remaining(KEY, since=1003.0, now=1005.0) == 8.0
    assert tracker.remaining(KEY, since=1003.0, now=1013.0) == 0.0


def test_a_container_that_ran_long_enough_starts_over():
    tracker = BackoffTracker(POLICY)
    for i in range(3):
        tracker.next(KEY, now=1000.0 + i)
    assert tracker.remaining(KEY, since=1150.0, now=1150.0) == 0.0
    assert tracker.next(KEY, now=1150.0) == 10.0


def test_keys_are_independent_and_can_be_forgotten():
    tracker = BackoffTracker(POLICY)
    tracker.next(("a", "x"), now=0.0)
    tracker.next(("a", "x"), now=0.0)
    tracker.next(("b", "x"), now=0.0)
    assert tracker.delay(("a", "x")) == 20.0 and tracker.delay(("b", "x")) == 10.0
    tracker.forget_where(lambda key: key[0] == "a")
    assert tracker.delay(("a", "x")) == 0.0 and tracker.delay(("b", "x")) == 10.0


def test_durations_read_as_go_prints_them():
    assert format_duration(0.2) == "200ms"
    assert format_duration(10) == "10s"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(300) == "5m0s"
    assert format_duration(3725) == "1h2m5s"
