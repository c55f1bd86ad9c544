"""What django-arc writes into its log lines, and how often: client text escaped so that it
cannot forge a line or colour a terminal (:func:`log_text`), and an outage of a background
loop logged once then at intervals rather than at every retry (:class:`FailureStreak`).
Free of DRF and of the database, so the transports and the relay import it as they are."""

from __future__ import annotations

import re
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
    how many there were."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self.count = 0
        self._logged_at: float | None = None

    def failed(self) -> bool:
        """Count a failure; whether to log it."""
        self.count += 1
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= self.interval:
            self._logged_at = now
            return True
        return False

    def ended(self) -> int:
        """The loop succeeded: how many failed in a row before (0: none), forgotten."""
        count, self.count, self._logged_at = self.count, 0, None
        return count

    def note(self) -> str:
        """What to add to a failure's line after the first: how many, and when the next."""
        if self.count <= 1:
            return ""
        return f" ({self.count} failed in a row; logged at most every {self.interval:g} s)"
