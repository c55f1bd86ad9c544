"""Failure policies: what the relay does with an event whose publish failed.

A policy is ``(attempts, error) -> datetime | DEAD``: retry at that time, or give up (the row
goes ``dead``, with its ``last_error``, for an operator to requeue).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone


class _Dead:
    """Sentinel a failure policy returns to send a row to the dead-letter state."""

    _instance: _Dead | None = None

    def __new__(cls) -> _Dead:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEAD"

    def __reduce__(self) -> str:
        return "DEAD"


DEAD = _Dead()

FailurePolicy = Callable[[int, BaseException], "datetime | _Dead"]


def _seconds(value: float | int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def exponential_backoff(
    base: float | timedelta = 1.0,
    max: float | timedelta = 600.0,  # noqa: A002  (SPEC names the argument ``max``)
    max_attempts: int = 8,
    jitter: bool = True,
) -> FailurePolicy:
    """Build a failure policy: retry after ``base * 2**(attempts-1)`` capped at ``max``, and
    give up (``DEAD``) once ``attempts`` reaches ``max_attempts``.

    Jitter is "equal jitter" (a random point in the upper half of the delay), which spreads a
    burst of failures over time while keeping successive delays non-decreasing, so a row's
    ``visible_at`` always moves further out with each failure.
    """
    base_s, max_s = _seconds(base), _seconds(max)
    if base_s < 0 or max_s < 0 or max_attempts < 1:
        raise ValueError("exponential_backoff needs base >= 0, max >= 0 and max_attempts >= 1")

    def policy(attempts: int, error: BaseException | str | None = None) -> datetime | _Dead:
        if attempts >= max_attempts:
            return DEAD
        exponent = attempts - 1 if attempts > 1 else 0  # ``max`` is shadowed here
        # a float power: past 2**1023 the int no longer converts (OverflowError after 1,025
        # attempts), while the float product saturates at inf, which ``max`` then caps
        delay = min(max_s, base_s * 2.0 ** min(exponent, 1023))
        if jitter:
            delay = delay / 2 + random.uniform(0, delay / 2)
        return timezone.now() + timedelta(seconds=delay)

    policy.max_attempts = max_attempts  # type: ignore[attr-defined]
    return policy


#: ``ARC["OUTBOX"]["FAILURE_POLICY"]`` may name a *factory* like this one; factories are called
#: with ``max_attempts=ARC["OUTBOX"]["MAX_ATTEMPTS"]`` to build the policy.
exponential_backoff.arc_policy_factory = True  # type: ignore[attr-defined]
