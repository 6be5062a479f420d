"""The one retry loop every Kubernetes call goes through.

Bounded attempts, exponential backoff with *full jitter* (a uniform wait in ``[0, min(cap,
base·2^n))``, so many clients that failed together do not retry together), ``Retry-After`` honoured
whenever the server sends it (429 from API Priority and Fairness, sometimes 503), and an overall
deadline so a dead API server fails the phase in bounded time. urllib3's own retries are off
(:mod:`k3smig_lib.k8s.client`), so there is exactly one place that decides to wait.

The loop is pure: the clock, the sleep and the random source are parameters, so unit tests run it
in zero wall time and assert every wait it chose.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from k3smig_lib.errors import RetryableError
from k3smig_lib.k8s.errors import ApiRetryableError, fatal_class
from k3smig_lib.log import logger

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Attributes:
        attempts: calls at most, the first one included (default 6).
        base_delay: seconds; the n-th backoff draws from ``[0, base_delay·2^(n-1))`` (default 0.5).
        max_delay: seconds; cap of one backoff draw (default 16).
        deadline: seconds from the first call after which no new attempt starts (default 90).
        max_retry_after: seconds; a longer ``Retry-After`` is cut to this (default 60).
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 16.0
    deadline: float = 90.0
    max_retry_after: float = 60.0


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class RetryEvent:
    """One decision to wait, for logs, stats and tests."""

    what: str
    attempt: int
    delay: float
    status: int
    retry_after: float | None
    reason: str


def backoff_ceiling(policy: RetryPolicy, attempt: int) -> float:
    """Upper bound of the jittered wait after failed attempt number ``attempt`` (1-based).

    Examples:
        >>> [backoff_ceiling(RetryPolicy(base_delay=0.5, max_delay=3), n) for n in (1, 2, 3, 4)]
        [0.5, 1.0, 2.0, 3.0]
    """
    return float(min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1)))


def next_delay(policy: RetryPolicy, attempt: int, err: RetryableError, rand: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt ``attempt``: ``Retry-After`` if sent, else full jitter.

    Examples:
        >>> e = ApiRetryableError("throttled", status=429, retry_after=2.0)
        >>> next_delay(RetryPolicy(), 1, e, lambda: 0.99)
        2.0
    """
    if isinstance(err, ApiRetryableError) and err.retry_after is not None:
        return min(err.retry_after, policy.max_retry_after)
    return rand() * backoff_ceiling(policy, attempt)


def _describe(err: RetryableError) -> tuple[int, float | None]:
    if isinstance(err, ApiRetryableError):
        return err.status, err.retry_after
    return 0, None


def _give_up(what: str, err: RetryableError, attempts: int, elapsed: float, why: str) -> Exception:
    """The final error: attempts, the bound that stopped the loop, and the last status.

    The elapsed time goes to the log only: a message names what is configured (attempts, deadline),
    never a measured float, so the same failure always reads the same (and tests can match it).
    """
    status, _ = _describe(err)
    side = err.side if isinstance(err, ApiRetryableError) else ""
    last = f"HTTP {status}" if status else "no HTTP status (transport error)"
    logger.warning("giving up on %s after %d attempt(s) in %.1fs (%s)", what, attempts, elapsed, why)
    return fatal_class(side)(
        f"{what} failed after {attempts} attempt(s) ({why}); last error: {err.message}; last status: {last}",
        fix="check the API server's health and the network, then re-run (the step is safe to repeat)",
    )


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying :class:`RetryableError` within ``policy``.

    Args:
        fn: one attempt; it raises ``RetryableError`` (usually ``ApiRetryableError``) for transient
            failures and anything else for permanent ones (raised at once).
        what: phrase for messages (``"list secrets"``).
        policy: attempts, backoff and deadline.
        sleep: waits (injected by tests).
        clock: monotonic seconds (injected by tests).
        rand: uniform ``[0, 1)`` source for the jitter (injected by tests).
        on_retry: told about every wait before it happens.

    Returns:
        What ``fn`` returned.

    Raises:
        FatalError: (``SourceError``/``TargetError`` by side) when attempts or the deadline run out;
            the message gives the attempts, the bound reached and the last status; chained to the last error.

    Examples:
        >>> calls = []
        >>> def flaky() -> str:
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise ApiRetryableError("busy", status=503)
        ...     return "ok"
        >>> call_with_retry(flaky, what="get x", sleep=lambda s: None), len(calls)
        ('ok', 3)
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except RetryableError as err:
            elapsed = clock() - start
            if attempt >= policy.attempts:
                raise _give_up(what, err, attempt, elapsed, "attempts exhausted") from err
            delay = next_delay(policy, attempt, err, rand)
            if elapsed + delay > policy.deadline:
                raise _give_up(what, err, attempt, elapsed, f"deadline of {policy.deadline:g}s") from err
            status, retry_after = _describe(err)
            event = RetryEvent(what, attempt, delay, status, retry_after, err.message)
            logger.info("retrying %s in %.2fs after attempt %d: %s", what, delay, attempt, err.message)
            if on_retry is not None:
                on_retry(event)
            sleep(delay)
