"""The retry loop: Retry-After, full-jitter backoff bounds, attempts and deadline (no wall time)."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from k3smig_lib.errors import FatalError, SourceError, TargetError
from k3smig_lib.k8s.errors import ApiRetryableError
from k3smig_lib.k8s.retry import RetryEvent, RetryPolicy, backoff_ceiling, call_with_retry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from faketime import FakeTime  # noqa: E402


def failing(errors: list[Exception], result: str = "ok") -> tuple[Callable[[], str], list[int]]:
    """A call that raises ``errors`` in turn, then returns ``result``; also returns the call log."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


def throttled(retry_after: float | None = None, status: int = 429, side: str = "source") -> ApiRetryableError:
    return ApiRetryableError(f"list secrets: HTTP {status}", status=status, retry_after=retry_after, side=side)


def test_retry_after_of_a_429_is_waited_exactly_then_the_call_succeeds() -> None:
    t = FakeTime()
    fn, calls = failing([throttled(retry_after=3.0)])
    assert call_with_retry(fn, what="list secrets", sleep=t.sleep, clock=t.clock, rand=lambda: 0.0) == "ok"
    assert t.sleeps == [3.0] and len(calls) == 2


def test_retry_after_on_a_503_is_honoured_too() -> None:
    t = FakeTime()
    fn, _ = failing([throttled(retry_after=2.0, status=503)])
    call_with_retry(fn, what="get /version", sleep=t.sleep, clock=t.clock, rand=lambda: 0.99)
    assert t.sleeps == [2.0]


def test_an_excessive_retry_after_is_cut_to_the_policy_maximum() -> None:
    t = FakeTime()
    fn, _ = failing([throttled(retry_after=3600.0)])
    call_with_retry(fn, what="x", policy=RetryPolicy(max_retry_after=5.0, deadline=60), sleep=t.sleep, clock=t.clock)
    assert t.sleeps == [5.0]


def test_backoff_ceiling_doubles_from_the_base_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert [backoff_ceiling(policy, n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_waits_stay_within_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(attempts=8, base_delay=0.5, max_delay=4.0, deadline=1000)
    rng = random.Random(7)
    for _ in range(50):
        t = FakeTime()
        fn, _ = failing([throttled() for _ in range(7)])
        call_with_retry(fn, what="x", policy=policy, sleep=t.sleep, clock=t.clock, rand=rng.random)
        assert len(t.sleeps) == 7
        for n, slept in enumerate(t.sleeps, start=1):
            assert 0.0 <= slept < backoff_ceiling(policy, n)


def test_the_largest_jitter_draw_is_close_to_the_ceiling() -> None:
    t = FakeTime()
    fn, _ = failing([throttled(), throttled(), throttled()])
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
    call_with_retry(fn, what="x", policy=policy, sleep=t.sleep, clock=t.clock, rand=lambda: 0.999)
    assert t.sleeps == pytest.approx([0.999, 1.998, 2.997])


def test_persistent_503_fails_after_the_last_attempt_with_the_last_status() -> None:
    t = FakeTime()
    fn, calls = failing([throttled(status=503) for _ in range(10)])
    with pytest.raises(SourceError, match=r"list secrets failed after 4 attempt\(s\).*last status: HTTP 503") as err:
        call_with_retry(fn, what="list secrets", policy=RetryPolicy(attempts=4), sleep=t.sleep, clock=t.clock)
    assert len(calls) == 4 and len(t.sleeps) == 3
    assert isinstance(err.value.__cause__, ApiRetryableError)


def test_the_deadline_stops_retrying_before_a_wait_would_pass_it() -> None:
    t = FakeTime()
    fn, calls = failing([throttled(status=502) for _ in range(50)])
    policy = RetryPolicy(attempts=50, base_delay=1.0, max_delay=100.0, deadline=10.0)
    with pytest.raises(SourceError, match=r"deadline of 10s.*last status: HTTP 502"):
        call_with_retry(fn, what="list pods", policy=policy, sleep=t.sleep, clock=t.clock, rand=lambda: 0.99)
    assert sum(t.sleeps) <= 10.0
    assert len(calls) == 4  # waits 0.99 + 1.98 + 3.96 = 6.93; the next one (7.92) would pass 10s


def test_a_retry_after_longer_than_the_remaining_deadline_fails_at_once() -> None:
    t = FakeTime()
    fn, calls = failing([throttled(retry_after=30.0)])
    with pytest.raises(SourceError, match="deadline of 20s"):
        call_with_retry(fn, what="x", policy=RetryPolicy(deadline=20.0), sleep=t.sleep, clock=t.clock)
    assert t.sleeps == [] and len(calls) == 1


def test_a_fatal_error_is_raised_at_once_without_retry() -> None:
    t = FakeTime()
    fn, calls = failing([SourceError("list secrets: not allowed (HTTP 403 Forbidden)")])
    with pytest.raises(SourceError, match="HTTP 403"):
        call_with_retry(fn, what="list secrets", sleep=t.sleep, clock=t.clock)
    assert len(calls) == 1 and t.sleeps == []


def test_a_transport_failure_reports_that_there_was_no_http_status() -> None:
    t = FakeTime()
    refused = ApiRetryableError("target cluster: get /version: connection refused", status=0, side="target")
    fn, _ = failing([refused] * 3)
    with pytest.raises(TargetError, match=r"connection refused; last status: no HTTP status \(transport error\)"):
        call_with_retry(fn, what="get /version", policy=RetryPolicy(attempts=3), sleep=t.sleep, clock=t.clock)


def test_an_error_without_side_fails_as_a_plain_fatal_error() -> None:
    t = FakeTime()
    fn, _ = failing([throttled(side="")] * 2)
    with pytest.raises(FatalError) as err:
        call_with_retry(fn, what="x", policy=RetryPolicy(attempts=2), sleep=t.sleep, clock=t.clock)
    assert type(err.value) is FatalError


def test_every_wait_is_announced_before_it_happens() -> None:
    t = FakeTime()
    events: list[RetryEvent] = []
    fn, _ = failing([throttled(retry_after=1.0), throttled(status=503)])
    call_with_retry(fn, what="list cm", sleep=t.sleep, clock=t.clock, rand=lambda: 0.5, on_retry=events.append)
    assert [(e.attempt, e.status, e.retry_after, e.delay) for e in events] == [(1, 429, 1.0, 1.0), (2, 503, None, 0.5)]


def test_the_final_message_names_the_bounds_not_the_measured_time() -> None:
    t = FakeTime()
    fn, _ = failing([throttled(status=503)] * 3)
    with pytest.raises(SourceError) as err:
        call_with_retry(fn, what="list secrets", policy=RetryPolicy(attempts=3), sleep=t.sleep, clock=t.clock,
                        rand=lambda: 0.123456)
    assert err.value.message == ("list secrets failed after 3 attempt(s) (attempts exhausted); last error: "
                                 "list secrets: HTTP 503; last status: HTTP 503")
