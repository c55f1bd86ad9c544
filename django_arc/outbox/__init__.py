"""Transactional outbox: store events with the write, relay them to a transport afterwards.

``get_outbox()`` is the configured instance (``ARC["OUTBOX"]`` + the ``EVENTS`` transport) used
by the built-in signal receiver, ``manage.py arc_relay`` and the Celery tasks.
"""

from __future__ import annotations

from typing import Any

from .models import OutboxEvent, OutboxStatus
from .relay import (
    DEAD,
    EventOutbox,
    RelayResult,
    decode_row,
    default_worker_id,
    exponential_backoff,
    store_event,
)

__all__ = [
    "DEAD",
    "EventOutbox",
    "OutboxEvent",
    "OutboxStatus",
    "RelayResult",
    "decode_row",
    "default_worker_id",
    "exponential_backoff",
    "get_failure_policy",
    "get_outbox",
    "get_outbox_transport",
    "store_event",
]

_outbox: EventOutbox | None = None


def get_outbox_transport() -> Any:
    """The transport the relay publishes to: ``events.get_transport()`` when the events
    package provides it, else ``ARC["EVENTS"]["TRANSPORT"](**OPTIONS)``.

    Import errors propagate: ``arc_relay`` turns them into a non-zero exit code.
    """
    try:
        from ..events import get_transport
    except ImportError:
        get_transport = None
    if get_transport is not None:
        return get_transport()
    from ..settings import arc_settings

    transport_cls = arc_settings.import_setting("EVENTS.TRANSPORT")
    options = arc_settings.EVENTS.get("OPTIONS") or {}
    return transport_cls(**options) if isinstance(transport_cls, type) else transport_cls


def get_failure_policy() -> Any:
    """Resolve ``ARC["OUTBOX"]["FAILURE_POLICY"]``.

    The setting names either a policy ``(attempts, error) -> datetime | DEAD`` or a factory
    marked with ``arc_policy_factory = True`` (like :func:`exponential_backoff`), which is
    called with ``max_attempts=ARC["OUTBOX"]["MAX_ATTEMPTS"]``.
    """
    from ..settings import arc_settings

    policy = arc_settings.import_setting("OUTBOX.FAILURE_POLICY")
    if getattr(policy, "arc_policy_factory", False):
        policy = policy(max_attempts=int(arc_settings.OUTBOX.get("MAX_ATTEMPTS", 8)))
    if not callable(policy):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("ARC['OUTBOX']['FAILURE_POLICY'] must be callable")
    return policy


def get_outbox() -> EventOutbox:
    """The process-wide ``EventOutbox`` built from settings (rebuilt when ``ARC`` changes)."""
    global _outbox
    if _outbox is None:
        from ..settings import arc_settings

        conf = arc_settings.OUTBOX
        _outbox = EventOutbox(
            get_outbox_transport(),
            get_failure_policy(),
            lease_seconds=float(conf.get("LEASE_SECONDS", 30)),
            batch_size=int(conf.get("BATCH_SIZE", 100)),
        )
    return _outbox


def _drop_outbox() -> None:
    global _outbox
    _outbox = None


def _register_reload() -> None:
    from ..settings import on_reload

    on_reload(_drop_outbox)


_register_reload()
