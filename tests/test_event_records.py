"""Event records at their edges (found by hand mutants of ``django_arc/events/event.py`` and
``wire.py`` that the suite let through): a dead letter keeps when it *first* failed apart
from when it last did, through its dict form and back; a stored timestamp in another offset
is written to the wire in UTC."""

from datetime import UTC, datetime

from django_arc.events.event import DeadLetteredEvent, create_event


def test_a_dead_letter_keeps_its_first_failure_apart_from_its_last():
    first = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    last = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    dead = DeadLetteredEvent(
        event=create_event("orders.created", {"id": 1}),
        error="ValueError: boom",
        attempts=3,
        handler_name="h",
        failed_at=last,
        first_failed_at=first,
    )
    data = dead.to_dict()
    assert data["first_failed_at"] == first.isoformat()
    assert data["failed_at"] == last.isoformat()
    again = DeadLetteredEvent.from_dict(data)
    assert (again.first_failed_at, again.failed_at) == (first, last)
    unknown = DeadLetteredEvent(dead.event, "e", 1, "h", failed_at=last)
    assert unknown.to_dict()["first_failed_at"] == last.isoformat()


def test_a_stored_timestamp_in_another_offset_is_written_in_utc():
    """``iso_to_wire`` takes the fast path for a UTC ``isoformat()`` only: a timestamp of
    the same length in another offset is converted, not relabelled ``Z``."""
    from django_arc.events.wire import iso_to_wire

    assert iso_to_wire("2026-01-01T10:00:00.123456+00:00") == "2026-01-01T10:00:00.123Z"
    assert iso_to_wire("2026-01-01T10:00:00.123456+02:00") == "2026-01-01T08:00:00.123Z"
