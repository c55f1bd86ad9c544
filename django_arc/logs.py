"""What django-arc writes into its log lines, and how often: client text escaped so that it
cannot forge a line or colour a terminal (:func:`log_text`), and an outage of a background
loop logged once then at intervals rather than at every retry (:class:`FailureStreak`).
Free of DRF and of the database, so the transports and the relay import it as they are."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

#: what a log line must not carry raw: a backslash (so an escape reads as one), the C0 and C1
#: controls (newlines, ``ESC`` of ANSI colours), Unicode's line and paragraph separators, and
#: lone surrogates (which no handler can encode)
_UNLOGGABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def log_text(value: Any) -> str:
    """``value`` as text fit for a log line: each character of :data:`_UNLOGGABLE` written
    as its Python escape (``\\n``, ``\\x1b``), as Django's ``log_response`` escapes a path
    since CVE-2025-48432; other characters as they are (a database's message in its own
    language stays readable). A path, an id or a database's message quoting a value is the
    client's: written raw, ``%0A`` in a path forged a line."""
    return _UNLOGGABLE.sub(_escape_one, str(value))


def _escape_one(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape", "backslashreplace").decode("ascii")


class FailureStreak:
    """The consecutive failures of a background loop (the relay, an event consumer), for
    logging an outage without a line every time the loop retries (every second): the first
    failure, then at most one every ``interval`` seconds while they last, and when they end,
    how many there were.

    Safe to share between threads (the Celery task's streaks are its ticks', and a thread
    pool runs ticks at once): each step is taken under a lock, and :meth:`failed` returns
    the count *of that failure*, which its line says (:meth:`note` given it). Counted and
    read apart, a second tick's failure between them made the first tick's line say "2
    failed in a row" and drop the first failure's traceback."""

    def __init__(self, interval: float = 60.0, lapse: float | None = None) -> None:
        self.interval = interval
        #: seconds without a failure after which the streak is over (``None``: it lasts
        #: until :meth:`ended`): for failures no success ends, such as the Celery task's
        #: refused arguments, where a good tick may be another beat entry's
        self.lapse = lapse
        self.count = 0
        self._logged_at: float | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    def failed(self) -> int:
        """Count a failure; whether to log it: its number in the streak (1 for the first)
        when it is to be logged, else 0. A failure ``lapse`` seconds or more after the last
        one starts a new streak."""
        with self._lock:
            now = time.monotonic()
            if (
                self.lapse is not None
                and self._failed_at is not None
                and now - self._failed_at >= self.lapse
            ):
                self.count, self._logged_at = 0, None
            self._failed_at = now
            self.count += 1
            if self._logged_at is None or now - self._logged_at >= self.interval:
                self._logged_at = now
                return self.count
            return 0

    def ended(self) -> int:
        """The loop succeeded: how many failed in a row before (0: none), forgotten."""
        with self._lock:
            count, self.count, self._logged_at, self._failed_at = self.count, 0, None, None
            return count

    def reset(self) -> None:
        """Forget the streak (tests: a streak that outlives its calls is the process's, and
        one test's failures otherwise silenced the next test's first line for a minute)."""
        self.ended()

    def note(self, count: int | None = None) -> str:
        """What to add to a failure's line after the first: how many (``count``, what
        :meth:`failed` returned; else the streak's count now), and when the next."""
        count = self.count if count is None else count
        if count <= 1:
            return ""
        return f" ({count} failed in a row; logged at most every {self.interval:g} s)"
