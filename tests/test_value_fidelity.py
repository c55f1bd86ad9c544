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

import datetime
import itertools
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from django_arc import Resource, ResourceSite, presets, redis_alias
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.audit.store import insert_many
from django_arc.events import wire
from django_arc.events.event import dumps
from django_arc.events.transports import MemoryTransport
from django_arc.outbox import EventOutbox, OutboxEvent
from shop.models import Order, Product
from tests.budget import examples
from tests.factories import (
    AuthorFactory,
    MembershipFactory,
    OrganizationFactory,
    ProductFactory,
    member_client,
)
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Book, Gauge

pytestmark = pytest.mark.django_db

audited_site = ResourceSite(name="fidelity")


@audited_site.register
class AuditedGaugeResource(Resource):
    """A JSON field under ``Audited``: its ``before``/``after`` are the changed fields."""

    model = Gauge
    name = "audited-gauges"
    fields = ["id", "reading", "labels"]
    presets = [presets.Audited()]
    permissions = {"create": P.allow_public(), "update": P.allow_public()}


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


# -- properties: one row, every path -------------------------------------------------------------

#: text a CharField keeps as sent: no NUL, no lone surrogate, not blank once trimmed; RTL marks,
#: emoji, combining marks and escapes that look like surrogates (a backslash and "ud800") included
odd_text = (
    st.lists(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
        | st.sampled_from(["\u200f", "\u202e", "\U0001f600", "\\ud800", "\u0301", "%", "_", "+"]),
        min_size=1,
        max_size=8,
    )
    .map("".join)
    .filter(lambda s: s.strip() == s)
)
prices = st.decimals(min_value=Decimal("-999999.99"), max_value=Decimal("999999.99"), places=2)
books = itertools.count()


def found(client, path, params) -> list:
    r = client.get(path, params)
    assert r.status_code == 200, (params, r.content)
    return [row["id"] for row in r.json()["docs"]]


@override_settings(TIME_ZONE="America/St_Johns")
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    title=odd_text,
    price=prices,
    price_as_number=st.booleans(),
    rating=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    published=st.none() | st.dates(),
    is_available=st.booleans(),
)
@example(
    title="t",
    price=Decimal("10.50"),
    price_as_number=False,
    rating=1e16,
    published=None,
    is_available=True,
)
@example(
    title="t",
    price=Decimal("-0.00"),
    price_as_number=True,
    rating=-0.0,
    published=None,
    is_available=False,
)
def test_a_book_reads_back_the_same_from_every_path_and_its_values_find_it(
    api, title, price, price_as_number, rating, published, is_available
):
    """The write's response, a later GET and the relayed event (and its wire text) carry one
    JSON value per field; each rendered value, copied into a filter, finds the row."""
    Book.objects.all().delete()
    OutboxEvent.objects.all().delete()
    body = {
        "title": title,
        "isbn": f"i-{next(books)}",
        "author": AuthorFactory().pk,
        "price": float(price) if price_as_number else str(price),
        "rating": rating,
        "published": published and published.isoformat(),
        "is_available": is_available,
    }
    created = api.post("/api/books/", json.dumps(body), content_type="application/json")
    assert created.status_code == 201, (body, created.content)
    written = created.json()["data"]
    read = api.get(f"/api/books/{written['id']}/").json()["data"]
    assert same_json(written, read), (written, read)
    [(event, on_the_wire)] = relayed(MemoryTransport())
    assert same_json(event.payload["data"], read), (event.payload, read)
    assert same_json(on_the_wire["data"], read), (on_the_wire, read)

    one = [read["id"]]
    assert found(api, "/api/books/", {"title": read["title"]}) == one
    assert (
        found(api, "/api/books/", {"price[gte]": read["price"], "price[lte]": read["price"]}) == one
    )
    assert found(api, "/api/books/", {"uid": read["uid"]}) == one
    assert found(api, "/api/books/", {"is_available": json.dumps(read["is_available"])}) == one
    if read["published"] is not None:
        assert found(api, "/api/books/", {"published": read["published"]}) == one
    if read["rating"] is not None:
        assert found(api, "/api/books/", {"rating[gte]": json.dumps(read["rating"])}) == one


@override_settings(TIME_ZONE="Asia/Kathmandu")
@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    placed=st.datetimes(
        min_value=datetime.datetime(1901, 1, 1),
        max_value=datetime.datetime(9998, 12, 31),
        timezones=st.sampled_from(
            [datetime.UTC, ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu")]
        ),
    )
)
def test_a_datetime_rendered_with_its_offset_filters_back_to_its_row(placed):
    """A ``placed_at`` rendered in ``TIME_ZONE`` (``+05:45``, microseconds kept), sent back
    as both bounds of a range, finds exactly its order."""
    org = OrganizationFactory()
    client = member_client(org, "viewer")
    order = Order.objects.create(
        organization=org, product=ProductFactory(organization=org), customer_email="a@b.co"
    )
    Order.objects.filter(pk=order.pk).update(placed_at=placed)
    rendered = client.get(f"/api/orders/{order.reference}/").json()["data"]["placed_at"]
    # in UTC: Python never calls a time in a DST fold equal to one in another zone
    utc = datetime.UTC
    assert datetime.datetime.fromisoformat(rendered).astimezone(utc) == placed.astimezone(utc)
    bounds = {"placed_at[gte]": rendered, "placed_at[lte]": rendered}
    assert found(client, "/api/orders/", bounds) == [order.pk]


# -- negative zeros ---------------------------------------------------------------------------


def test_a_negative_zero_is_written_and_reported_as_zero(api):
    """No database stores ``-0.00`` (``numeric`` has none, SQLite keeps ``0``), nor does
    ``jsonb`` (events, audit) or SQLite store ``-0.0``: the create's response and event said
    ``"-0.00"``/``-0.0`` where every later read says ``"0.00"``/``0.0``, and an update sending
    ``"-0"`` to a row at ``0.00`` was an event saying ``price`` changed, with nothing changed."""
    author = AuthorFactory()
    body = {"title": "t", "isbn": "i-1", "author": author.pk, "price": "-0", "rating": -0.0}
    created = api.post("/api/books/", body, format="json")
    assert created.status_code == 201, created.content
    written = created.json()["data"]
    read = api.get(f"/api/books/{written['id']}/").json()["data"]
    assert (written["price"], str(written["rating"])) == ("0.00", "0.0")
    assert same_json(written, read)
    [(event, on_the_wire)] = relayed(MemoryTransport())
    assert same_json(event.payload["data"], read) and same_json(on_the_wire["data"], read)

    r = api.patch(f"/api/books/{written['id']}/", {"price": "-0.0"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["price"] == "0.00"
    assert OutboxEvent.objects.get(type="books.updated").payload["changed"] == []


json_text = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=6
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x or str(x) == "0.0")
    | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    reading=st.floats(allow_nan=False, allow_infinity=False),
    labels=json_values.filter(lambda v: v is not None),  # the column is not null
)
@example(reading=1e16, labels={"big": 2**53 + 1, "e": 1.5e300, "on": True, "rtl": "\u202eabc"})
def test_a_json_field_reaches_the_event_and_the_audit_log_as_the_response_says(
    settings, api, reading, labels
):
    """What the write answered is what its event (relayed, and on the wire) and its audit
    entry hold, as JSON values: integers beyond 2**53 exact, floats still floats, booleans
    still booleans, on SQLite and on PostgreSQL's ``jsonb``. (A later GET reads the model's
    own ``JSONField``, which is Django's: on PostgreSQL its ``1e+16`` reads back as an int.)"""
    OutboxEvent.objects.all().delete()
    AuditLog.objects.all().delete()
    body = json.dumps({"reading": reading, "labels": labels})
    with site_mounted(settings, "fidelity", audited_site):
        r = api.post("/fidelity/audited-gauges/", body, content_type="application/json")
    assert r.status_code == 201, (body, r.content)
    written = r.json()["data"]
    [(event, on_the_wire)] = relayed(MemoryTransport())
    assert same_json(event.payload["data"], written), (event.payload, written)
    assert same_json(on_the_wire["data"], written), (on_the_wire, written)
    assert same_json(AuditLog.objects.get().after, written)


keys = itertools.count()


@pytest.fixture
def cached_shop():
    """An admin of one organization, with the query cache on Redis under this test's own
    prefix, in a time zone with a 45-minute offset."""
    caches = caches_with("redis", REDIS_URL)
    with (
        override_settings(CACHES=caches, TIME_ZONE="Asia/Kathmandu"),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        redis_alias.reset_outage_warnings()
        org = OrganizationFactory()
        user = MembershipFactory(organization=org, role="admin").user
        yield client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)  # the cache is invalidated on commit
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=odd_text,
    price=st.decimals(min_value=Decimal("0"), max_value=Decimal("99.99"), places=2),
    cost=st.none() | st.decimals(min_value=-(10**8) + 1, max_value=10**8 - 1, places=2),
)
def test_a_product_replays_and_hits_byte_for_byte_and_its_values_find_it(
    cached_shop, name, price, cost
):
    """The replay of a keyed create is its first answer byte for byte; a cached get and list
    (MISS, then HIT) are the uncached twin's bytes; the event holds what the answers say; the
    rendered name and price, as filters of the cached list, find the row."""
    admin = cached_shop
    Product.objects.all().delete()
    OutboxEvent.objects.all().delete()
    n = next(keys)
    body = json.dumps(
        {
            "name": name,
            "sku": f"s{n}",
            "price": str(price),
            "cost": None if cost is None else str(cost),
        }
    )
    sent = [
        admin.generic(
            "POST",
            "/api/idem-products/",
            body,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"fidelity-{n}",
        )
        for _ in range(2)
    ]
    assert sent[0].status_code == 201, sent[0].content
    assert sent[1].content == sent[0].content
    pk = sent[0].json()["data"]["id"]

    def twins(path, query=None):
        miss, hit = (admin.get(f"/api/cached-products/{path}", query) for _ in range(2))
        uncached = admin.get(f"/api/uncached-products/{path}", query)
        assert miss.content == hit.content == uncached.content, (query, miss.content)
        return uncached.json()

    read = twins(f"{pk}/")["data"]
    assert same_json(sent[0].json()["data"], read)
    assert same_json(OutboxEvent.objects.get().payload["data"], read)
    query = {
        "name[contains]": read["name"],
        "price[gte]": read["price"],
        "price[lte]": read["price"],
    }
    assert [row["id"] for row in twins("", query)["docs"]] == [pk]


def test_audit_changed_compares_as_json_values_like_update_events():
    """``audit.changed()``, public for a project's own audit entries, compared with ``==``
    (``True == 1``), so a flag that became 1 was no change there while the event said it
    was; it is the events' comparison now."""
    from django_arc import audit

    assert audit.changed({"on": True, "n": 1}, {"on": 1, "n": 1.0}) == ({"on": True}, {"on": 1})
    assert audit.changed(None, {"on": True}) == (None, {"on": True})
