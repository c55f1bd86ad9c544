"""One row's values keep their meaning on every path that copies them.

A value travels from the request into the response of the write, the response of a later
read, the event payload (stored in the outbox, relayed to a transport, spliced onto arc's
wire), the audit log, the query cache's answers and the idempotency store's replay; and back
into filters, copied from a rendered body into the query string. Each copy must carry the same
JSON value: the same type and the same number, not merely one that compares equal in Python
(``1e16 == 10**16``, ``True == 1``). PostgreSQL's ``jsonb`` (outbox and audit columns) keeps a
number's digits but not its exponent and sorts object keys: key order is not a JSON value's
meaning, a number's type is.
"""

import json

import pytest

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.audit.store import insert_many
from django_arc.events import wire
from django_arc.events.event import dumps
from django_arc.events.transports import MemoryTransport
from django_arc.outbox import EventOutbox, OutboxEvent
from tests.factories import AuthorFactory
from tests.helpers import site_mounted
from tests.testapp.models import Gauge

pytestmark = pytest.mark.django_db

audited_site = ResourceSite(name="fidelity")


@audited_site.register
class AuditedGaugeResource(Resource):
    """A JSON field under ``Audited``: its ``before``/``after`` are the changed fields."""

    model = Gauge
    name = "audited-gauges"
    fields = ["id", "reading", "labels"]
    presets = [presets.Audited()]
    permissions = {"update": P.allow_public()}


def same_json(a, b) -> bool:
    """Equal as JSON values: numbers of one type, keys in any order."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def relayed(transport: MemoryTransport):
    """The events the relay hands a transport, read back from the outbox, and each one's
    payload as it goes onto arc's wire."""
    EventOutbox(transport).relay_batch(limit=100)
    return [(event, json.loads(wire.encoded(event))["payload"]) for event in transport.published]


# -- floats with an exponent -----------------------------------------------------------------


@pytest.mark.parametrize("rating", [1e16, -2.5e20, 1.5e300], ids=["1e16", "-2.5e20", "1.5e300"])
def test_a_float_python_writes_with_an_exponent_stays_that_float_in_events_and_audit(api, rating):
    """Python writes ``1e16`` as ``1e+16``; ``jsonb`` stored it as the integer
    ``10000000000000000``, so on PostgreSQL a float column's value reached every consumer
    (relayed event, Redis wire, audit entry) as an int, a 301-digit one for ``1.5e300``,
    while the response said ``1e+16``."""
    author = AuthorFactory()
    body = {"title": "t", "isbn": "i-1", "author": author.pk, "rating": rating}
    created = api.post("/api/books/", body, format="json")
    assert created.status_code == 201, created.content
    shown = api.get(f"/api/books/{created.json()['data']['id']}/").json()["data"]["rating"]
    assert type(shown) is float and shown == rating

    [(event, on_the_wire)] = relayed(MemoryTransport())
    for data in (event.payload["data"], on_the_wire["data"]):
        assert type(data["rating"]) is float and data["rating"] == rating, data

    AuditLog.objects.create(action="update", after={"rating": rating})
    insert_many(AuditLog(action="update"), [("1", None, {"rating": rating})])
    for entry in AuditLog.objects.order_by("id"):
        assert type(entry.after["rating"]) is float and entry.after["rating"] == rating


def test_floats_with_an_exponent_are_stored_in_positional_notation():
    """What the outbox and audit columns store: digits and a decimal point (which ``jsonb``
    keeps), the same float when parsed; everything else, strings saying ``e+`` included, as
    ``json`` writes it."""
    value = {"big": [1e16, -2.5e20], "small": [1e-07, 1e15], "text": "1e+16 one+two", 1: 2.0}
    assert dumps(value) == (
        '{"big":[10000000000000000.0,-250000000000000000000.0],'
        '"small":[1e-07,1000000000000000.0],"text":"1e+16 one+two","1":2.0}'
    )
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
    assert json.loads(dumps([1.7976931348623157e308]))[0] == 1.7976931348623157e308


# -- booleans in JSON fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"on": True}, {"on": 1}),
        ([False, 2], [0, 2]),
        (1, True),
        ({"n": [{"x": 0}]}, {"n": [{"x": False}]}),
    ],
    ids=["true-to-1", "false-to-0", "1-to-true", "nested"],
)
def test_a_json_value_turning_from_a_boolean_to_a_number_is_a_change(settings, api, before, after):
    """Python's ``==`` takes ``True`` for ``1``: a JSON field whose ``true`` became ``1`` was
    an update whose event said nothing changed (``changed: []``) and whose audit entry
    recorded no field, while the row and the response changed."""
    gauge = Gauge.objects.create(labels=before)
    with site_mounted(settings, "fidelity", audited_site):
        r = api.patch(f"/fidelity/audited-gauges/{gauge.pk}/", {"labels": after}, format="json")
    assert r.status_code == 200, r.content
    assert same_json(r.json()["data"]["labels"], after)
    payload = OutboxEvent.objects.get(type="audited-gauges.updated").payload
    assert payload["changed"] == ["labels"]
    assert same_json(payload["previous"], {"labels": before})
    entry = AuditLog.objects.get(action="updated")
    assert same_json(entry.before, {"labels": before})
    assert same_json(entry.after, {"labels": after})


def test_one_number_written_as_1_or_1_0_and_the_same_boolean_are_no_change(settings, api):
    """JSON has one number type: ``1`` and ``1.0`` are the same value, as are ``true`` and
    ``true``; only ``reading``, which moved, is reported."""
    gauge = Gauge.objects.create(reading=1.0, labels={"n": 1, "on": True})
    body = {"reading": 2.0, "labels": {"n": 1.0, "on": True}}
    with site_mounted(settings, "fidelity", audited_site):
        r = api.patch(f"/fidelity/audited-gauges/{gauge.pk}/", body, format="json")
    assert r.status_code == 200, r.content
    assert OutboxEvent.objects.get().payload["changed"] == ["reading"]
    assert AuditLog.objects.get().after == {"reading": 2.0}
