"""The process-wide ``EventOutbox`` built from ``ARC["OUTBOX"]`` and the configured transport."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..events.configured import get_transport
from ..settings import DEFAULTS, MAX_SECONDS, arc_settings, on_reload
from .policy import exponential_backoff
from .relay import MAX_BATCH_SIZE, EventOutbox

_outbox: EventOutbox | None = None


class OutboxSettingError(ImproperlyConfigured):
    """An ``ARC["OUTBOX"]`` value the relay cannot run with (arc.E008 reports it at start-up,
    unless silenced, or on a server that runs no checks). Its message is django-arc's own,
    naming the setting and what it must be, and quotes no more than the value: a caller may
    show it (the admin's "Relay now" does), where a transport's error may hold a broker's
    address and password."""


def _setting(name: str, read: Any, want: str, ok: Any = lambda value: True) -> Any:
    """``ARC["OUTBOX"][name]`` read as the relay reads it (``int``/``float``), a value
    ``ok`` takes (a NaN none), or :class:`OutboxSettingError` naming it: read raw, a
    ``BATCH_SIZE`` of 0 or less built an outbox whose relay refused every call with a
    ``ValueError`` naming ``batch_size``, not the setting (a 500 on the admin's "Relay now",
    a traceback from ``arc_relay`` and every beat tick), and a value ``int()``/``float()``
    cannot read was their bare ``ValueError``. A bool is no number here either
    (``int(True)`` was a ``BATCH_SIZE`` or ``MAX_ATTEMPTS`` of 1 that arc.E008 refuses): one
    answer with checks on or off. What else the relay runs with (a string ``int()`` reads, a
    size above the cap, which is capped) stays arc.E008's to report."""
    raw = arc_settings.OUTBOX.get(name, DEFAULTS["OUTBOX"][name])
    try:
        value = None if isinstance(raw, bool) else read(raw)
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or value != value or not ok(value):
        raise OutboxSettingError(f"ARC['OUTBOX']['{name}'] must be {want}, got {raw!r} (arc.E008).")
    return value


def get_failure_policy() -> object:
    """Resolve ``ARC["OUTBOX"]["FAILURE_POLICY"]``.

    The setting names either a policy ``(attempts, error) -> datetime | DEAD`` or a factory
    marked with ``arc_policy_factory = True`` (like :func:`exponential_backoff`), which is
    called with ``max_attempts=ARC["OUTBOX"]["MAX_ATTEMPTS"]``.
    """
    policy = arc_settings.import_setting("OUTBOX.FAILURE_POLICY")
    if getattr(policy, "arc_policy_factory", False):
        # arc's own factory cannot run with fewer than 1 (its ValueError, read by "Relay
        # now" as a transport that could not be built and logged as a traceback every
        # minute); a project's factory judges its own range, as it did
        if policy is exponential_backoff:
            max_attempts = _setting(
                "MAX_ATTEMPTS", int, "an integer of 1 or more", lambda value: value >= 1
            )
        else:
            max_attempts = _setting("MAX_ATTEMPTS", int, "an integer")
        policy = policy(max_attempts=max_attempts)
    if not callable(policy):
        raise ImproperlyConfigured("ARC['OUTBOX']['FAILURE_POLICY'] must be callable")
    return policy


def get_outbox() -> EventOutbox:
    """The process-wide ``EventOutbox`` built from settings (rebuilt when ``ARC`` changes)."""
    global _outbox
    # read once, as ``arc_settings``' memos: a change of ``ARC`` (another thread's) forgets
    # it between a fill and a second read, which answered ``None``
    outbox = _outbox
    if outbox is None:
        # the settings first, so that a bad one is said whether or not the broker is up
        batch_size = _setting(
            "BATCH_SIZE",
            int,
            f"an integer from 1 to {MAX_BATCH_SIZE} (rows a batch claims)",
            lambda value: value >= 1,
        )
        # 0 or less let another worker take a batch over while it was published (published
        # twice); past MAX_SECONDS (infinity too) no lease's end can be computed, every claim
        # an OverflowError
        lease_seconds = _setting(
            "LEASE_SECONDS",
            float,
            f"a positive number of seconds, at most {MAX_SECONDS}",
            lambda value: 0 < value <= MAX_SECONDS,
        )
        outbox = _outbox = EventOutbox(
            get_transport(),
            get_failure_policy(),
            lease_seconds=lease_seconds,
            batch_size=batch_size,
        )
    return outbox


def _drop_outbox() -> None:
    global _outbox
    _outbox = None


on_reload(_drop_outbox)
