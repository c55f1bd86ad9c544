"""The dead-letter requeue's own records at their edges (each case was found by a hand
mutant of ``django_arc/outbox/admin.py`` that the suite let through):

- requeueing only dead rows says so, with no "were not dead" remark;
- the admin history entry of a requeued row names it within ``LogEntry.object_repr``'s 200
  characters, however long its type (200) and event id (64) are (PostgreSQL refuses a
  longer value; SQLite would store it);
- ``requeue()`` touches dead rows only, whatever ids it is given, and clears their lease.
"""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from django_arc.outbox import OutboxEvent
from tests.test_admin_outbox import CHANGELIST, admin_client_, make_row  # noqa: F401

pytestmark = pytest.mark.django_db


def test_requeueing_only_dead_rows_says_nothing_of_rows_that_were_not(admin_client_):  # noqa: F811
    dead = [make_row("dead") for _ in range(2)]
    response = admin_client_.post(
        reverse(CHANGELIST),
        {"action": "requeue_selected", "_selected_action": [r.pk for r in dead]},
        follow=True,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Requeued 2 dead event(s)." in body
    assert "were not dead" not in body


def test_the_history_of_a_requeued_row_fits_its_column(admin_client_):  # noqa: F811
    row = make_row("dead", type="t" * 200, event_id="e" * 64)
    response = admin_client_.post(
        reverse(CHANGELIST),
        {"action": "requeue_selected", "_selected_action": [row.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert OutboxEvent.objects.get(pk=row.pk).status == "pending"
    (entry,) = LogEntry.objects.filter(object_id=str(row.pk))
    assert len(entry.object_repr) == 200
    assert entry.object_repr.startswith("t" * 200)


def test_requeue_touches_dead_rows_only_and_clears_their_lease():
    """``requeue()`` is public (the admin's, a shell's): rows that are not dead are left
    as they are, whatever ids it is given; a dead row comes back pending with no lease."""
    from django.utils import timezone

    from django_arc.outbox.configured import get_outbox

    dead = make_row(
        "dead", lease_owner="worker-1", lease_expires_at=timezone.now() + timezone.timedelta(1)
    )
    delivered, pending = make_row("delivered"), make_row("pending", attempts=3)
    assert get_outbox().requeue([dead.pk, delivered.pk, pending.event_id]) == 1
    rows = {r.pk: r for r in OutboxEvent.objects.all()}
    assert rows[dead.pk].status == "pending"
    assert (rows[dead.pk].lease_owner, rows[dead.pk].lease_expires_at) == (None, None)
    assert rows[delivered.pk].status == "delivered"
    assert (rows[pending.pk].status, rows[pending.pk].attempts) == ("pending", 3)
