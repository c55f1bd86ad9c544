"""The process-wide ``EventOutbox`` built from ``ARC["OUTBOX"]`` and the configured transport."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from ..events.configured import get_transport
from ..settings import arc_settings, on_reload
from .relay import EventOutbox

_outbox: EventOutbox | None = None


def get_failure_policy() -> object:
    """Resolve ``ARC["OUTBOX"]["FAILURE_POLICY"]``.

    The setting names either a policy ``(attempts, error) -> datetime | DEAD`` or a factory
    marked with ``arc_policy_factory = True`` (like :func:`exponential_backoff`), which is
    called with ``max_attempts=ARC["OUTBOX"]["MAX_ATTEMPTS"]``.
    """
    policy = arc_settings.import_setting("OUTBOX.FAILURE_POLICY")
    if getattr(policy, "arc_policy_factory", False):
        policy = policy(max_attempts=int(arc_settings.OUTBOX.get("MAX_ATTEMPTS", 8)))
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
        conf = arc_settings.OUTBOX
        outbox = _outbox = EventOutbox(
            get_transport(),
            get_failure_policy(),
            lease_seconds=float(conf.get("LEASE_SECONDS", 30)),
            batch_size=int(conf.get("BATCH_SIZE", 100)),
        )
    return outbox


def _drop_outbox() -> None:
    global _outbox
    _outbox = None


on_reload(_drop_outbox)
