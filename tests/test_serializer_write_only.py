"""A project's ``serializer_class`` declaring ``write_only`` fields (a password, a card token,
a secret answer; ``extra_kwargs={"cost": {"write_only": True}}`` too): DRF never renders
them, so no caller reads them.

Before, the query string still probed them when ``filter_fields``, ``sort_fields`` or
``search_fields`` listed them (``?secret_notes=PASSWORD`` answered the row,
``?cost[gte]=5`` told the cost, ``?sort=cost`` ordered by it, ``?search=`` matched the
secret) and ``?select=secret_notes`` answered 200 with the row's id where every other field
no caller reads is 400: they are now treated as ``hidden()`` fields are there. What the
rest of django-arc does with such a row is pinned as sound: events, the audit log, the
idempotency record and the answers carry no write-only value.
"""

import json

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent
from shop.models import Product
from tests.factories import OrganizationFactory, UserFactory, member_client
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article, CodeThing, RefHolder

pytestmark = pytest.mark.django_db

SECRET, COST = "PASSWORD-7f3", "3.00"


class WriteOnlySerializer(serializers.ModelSerializer):
    secret_notes = serializers.CharField(write_only=True, required=False)
    title = serializers.CharField(source="name")

    class Meta:
        model = Product
        fields = ["id", "title", "sku", "price", "secret_notes", "organization", "cost"]
        extra_kwargs = {"cost": {"write_only": True}}


class WriteOnlyResource(Resource):
    model = Product
    name = "write-only"
    serializer_class = WriteOnlySerializer
    filter_fields = {"name": ["eq"], "cost": ["gte"], "secret_notes": ["eq", "startswith"]}
    sort_fields = ["cost", "name"]
    search_fields = ["name", "secret_notes"]
    presets = [
        presets.MultiTenant(tenant_field="organization"),
        presets.Audited(),
        presets.Bulk(),
    ]
    permissions = {
        k: P.require_org_membership() for k in ("list", "get", "create", "update", "delete")
    }
    idempotent = True


@pytest.fixture
def client(settings):
    site = ResourceSite(name="write-only-site")
    site.register(WriteOnlyResource)
    with site_mounted(settings, "wo", site):
        c = member_client(OrganizationFactory(), "editor")
        body = {"title": "Lamp", "sku": "L", "price": "1.00", "secret_notes": SECRET, "cost": COST}
        r = c.post("/wo/write-only/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        assert r.status_code == 201, r.json()
        c.pk = r.json()["data"]["id"]
        yield c


@pytest.mark.parametrize(
    "query, param",
    [
        (f"secret_notes={SECRET}", "secret_notes"),
        ("secret_notes[startswith]=P", "secret_notes[startswith]"),
        ("cost[gte]=5", "cost[gte]"),
        ("sort=cost", "sort"),
        ("sort=-cost", "sort"),
        ("select=secret_notes", "select"),
        ("select=cost", "select"),
    ],
)
def test_the_query_string_cannot_probe_a_write_only_field(client, query, param):
    body = assert_error(client.get(f"/wo/write-only/?{query}"), 400, "INVALID_QUERY")
    assert list(body["details"]) == [param]


@pytest.mark.parametrize("key", ["cost[gte]", "secret_notes"])
def test_a_bulk_update_cannot_filter_on_a_write_only_field(client, key):
    """``{"updated": 0}`` or ``1`` told whether the cost reached 5, or the secret's value."""
    body = {"filter": {key: "1"}, "data": {"title": "Renamed"}}
    r = client.patch("/wo/write-only/bulk/", body, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "filter": {key: ["Not a filter of this resource."]}
    }
    assert Product.objects.get().name == "Lamp"


def test_search_skips_a_write_only_field(client):
    r = client.get("/wo/write-only/?search=PASSWORD")
    assert r.status_code == 200 and r.json()["docs"] == []
    assert [d["id"] for d in client.get("/wo/write-only/?search=lamp").json()["docs"]] == [
        client.pk
    ]


def test_the_readable_fields_are_still_filtered_sorted_and_selected(client):
    r = client.get("/wo/write-only/?name=Lamp&sort=-name&select=title")
    assert r.status_code == 200, r.json()
    assert r.json()["docs"] == [{"id": client.pk, "title": "Lamp"}]


def test_no_write_only_value_leaves_in_answers_events_audit_or_idempotency(client):
    r = client.patch(f"/wo/write-only/{client.pk}/", {"secret_notes": "NEW-SECRET"}, format="json")
    assert r.status_code == 200, r.json()
    assert Product.objects.get().secret_notes == "NEW-SECRET"
    stored = [
        json.dumps(r.json()),
        json.dumps(client.get(f"/wo/write-only/{client.pk}/").json()),
        *(json.dumps(e.payload) for e in OutboxEvent.objects.all()),
        *(json.dumps([a.before, a.after]) for a in AuditLog.objects.all()),
        *(bytes(i.body).decode() for i in IdempotencyRecord.objects.all()),
    ]
    assert len(stored) == 2 + 2 + 2 + 1
    for text in stored:
        assert SECRET not in text and "NEW-SECRET" not in text and '"cost"' not in text, text


def test_the_schema_does_not_offer_a_write_only_field_to_the_query_string(client):
    from django_arc.filters import QueryLanguageFilter

    view = WriteOnlyResource().as_viewset()()
    view.resource = WriteOnlyResource()
    params = {p["name"]: p for p in QueryLanguageFilter().get_schema_operation_parameters(view)}
    assert not any(n.startswith(("secret_notes", "cost")) for n in params)
    assert "`title`" in params["select"]["description"]
    assert "cost" not in json.dumps(params["sort"]) and "secret" not in json.dumps(params)
    assert "cost" not in json.dumps(params["select"])


class CostSortedResource(WriteOnlyResource):
    name = "cost-sorted"
    default_sort = "-cost"


def test_a_default_sort_by_a_write_only_field_is_not_paged_by_cursor(settings):
    site = ResourceSite(name="cost-sorted-site")
    site.register(CostSortedResource)
    with site_mounted(settings, "cs", site):
        c = member_client(OrganizationFactory(), "editor")
        for cost in ("3.00", "9.00"):
            body = {"title": "Lamp", "sku": cost, "price": "1.00", "cost": cost}
            assert c.post("/cs/cost-sorted/", body, format="json").status_code == 201
        assert c.get("/cs/cost-sorted/").status_code == 200
        body = assert_error(c.get("/cs/cost-sorted/?limit=1&after="), 400, "INVALID_QUERY")
        assert list(body["details"]) == ["after"] and "cost" not in json.dumps(body)


def test_the_response_component_leaves_write_only_fields_out(settings):
    """Requests and responses are separate components (the request leaves read-only fields
    out); the response listed the write-only ones, ``writeOnly`` but as if a row could carry
    them, where drf-spectacular's own split (``COMPONENT_SPLIT_REQUEST``) leaves them out."""
    from drf_spectacular.generators import SchemaGenerator

    site = ResourceSite(name="write-only-schema-site")
    site.register(WriteOnlyResource)
    with site_mounted(settings, "wos", site):
        components = SchemaGenerator().get_schema(request=None, public=True)["components"]
    response = components["schemas"]["WriteOnly"]["properties"]
    request = components["schemas"]["WriteOnlyRequest"]["properties"]
    assert list(response) == ["id", "title", "sku", "price", "organization"]
    assert list(request) == ["title", "sku", "price", "secret_notes", "cost"]
    assert request["secret_notes"]["writeOnly"] is True


class OwnerFromRequestSerializer(serializers.ModelSerializer):
    owner = serializers.HiddenField(default=serializers.CurrentUserDefault())

    class Meta:
        model = Article
        fields = ["id", "title", "slug", "owner"]


class OwnerFromRequestResource(Resource):
    model = Article
    name = "owner-from-request"
    serializer_class = OwnerFromRequestSerializer
    filter_fields = {"owner": ["eq"]}
    sort_fields = ["owner"]
    permissions = {k: P.require_auth() for k in ("list", "get", "create")}


def test_a_hidden_field_setting_a_column_from_the_request_stays_queryable(settings):
    """DRF's ``HiddenField`` is write-only too, but it is DRF's way to set a column from
    the request (``CurrentUserDefault()``), not a secret: the owner stays as queryable as
    the project lists it."""
    site = ResourceSite(name="owner-from-request-site")
    site.register(OwnerFromRequestResource)
    with site_mounted(settings, "ofr", site):
        user, other = UserFactory(), UserFactory()
        c = client_for(user)
        r = c.post("/ofr/owner-from-request/", {"title": "A", "slug": "a"}, format="json")
        assert r.status_code == 201, r.json()
        assert Article.objects.get().owner_id == user.pk
        for owner, found in ((user, [r.json()["data"]["id"]]), (other, [])):
            listed = c.get(f"/ofr/owner-from-request/?owner={owner.pk}&sort=-owner")
            assert listed.status_code == 200, listed.json()
            assert [d["id"] for d in listed.json()["docs"]] == found


def test_an_update_of_a_write_only_field_alone_names_it_in_changed_without_its_value(client):
    """A PATCH setting only ``secret_notes`` (write-only) emitted ``changed: []``: its event
    now names the field, with no value in ``data`` or ``previous``; a PATCH sending the
    value the row holds names nothing, and a bulk update names it per row as a PATCH does."""
    url = f"/wo/write-only/{client.pk}/"
    for body in ({"secret_notes": "NEW-SECRET"}, {"secret_notes": "NEW-SECRET"}):
        assert client.patch(url, body, format="json").status_code == 200
    r = client.patch(
        "/wo/write-only/bulk/", {"items": [{"id": client.pk, "cost": "4.00"}]}, format="json"
    )
    assert r.status_code == 200, r.json()
    events = OutboxEvent.objects.filter(type="write-only.updated").order_by("created_at", "pk")
    payloads = [e.payload for e in events]
    assert [(p["changed"], p["previous"]) for p in payloads] == [
        (["secret_notes"], {}),
        ([], {}),
        (["cost"], {}),
    ]
    for payload in payloads:
        assert "secret_notes" not in payload["data"] and "cost" not in payload["data"]
        assert "NEW-SECRET" not in json.dumps(payload) and SECRET not in json.dumps(payload)


def _rf44_updated_once_and_in_bulk(client, url):
    """PATCH ``url`` (the client's row), then the same row in a bulk update, each a 200;
    the ``write-only.updated`` events, in order."""
    r = client.patch(url, {"title": "Desk lamp"}, format="json")
    assert r.status_code == 200, r.content
    r = client.patch(
        "/wo/write-only/bulk/", {"items": [{"id": client.pk, "title": "Lamp"}]}, format="json"
    )
    assert r.status_code == 200, r.content
    return list(OutboxEvent.objects.filter(type="write-only.updated").order_by("created_at", "pk"))


def test_an_updated_payload_override_of_the_three_argument_shape_still_runs(client, monkeypatch):
    """``updated_payload`` took a fourth argument (``written``, the write-only values), and
    an override of a ViewSet subclass written for its old shape, ``(instance, before,
    after)``, made every PATCH and bulk update a 500 (``TypeError``): it is called as it was
    written, with three, and its payload is the event's."""
    from django.urls import resolve

    url = f"/wo/write-only/{client.pk}/"
    view_class = resolve(url).func.cls
    base = view_class.updated_payload

    def updated_payload(self, instance, before, after):
        return {**base(self, instance, before, after), "by": "override"}

    monkeypatch.setattr(view_class, "updated_payload", updated_payload)
    events = _rf44_updated_once_and_in_bulk(client, url)
    assert [(e.payload["by"], e.payload["changed"]) for e in events] == [
        ("override", ["title"]),
        ("override", ["title"]),
    ]


def _seen8a_payload(by, instance, before, after, *written):
    """An override's payload: what changed, who built it and whether ``written`` came."""
    changed = sorted(k for k, v in after.items() if before.get(k) != v)
    return {"id": instance.pk, "data": {}, "changed": changed, "by": by, "arity": 3 + len(written)}


class Seen8aUnhashablePayload:
    """A callable object (unhashable: ``__eq__`` without ``__hash__``) a ViewSet class holds
    as its ``updated_payload``; it is called as it is, without the view."""

    def __eq__(self, other):
        return type(other) is type(self)

    def __call__(self, instance, before, after, written):
        return _seen8a_payload("callable", instance, before, after, written)


class Seen8aUnhashableThreeArgumentPayload(Seen8aUnhashablePayload):
    """The same, of the three-argument shape (before ``written`` came)."""

    def __call__(self, instance, before, after):
        return _seen8a_payload("callable", instance, before, after)


def _seen8a_override(kind, four):
    if kind == "callable":
        return Seen8aUnhashablePayload() if four else Seen8aUnhashableThreeArgumentPayload()
    if four:

        def function(*args):
            # (cls,) or () before instance, before, after, written
            return _seen8a_payload(kind, *args[-4:])

        def override(instance, before, after, written):
            return function(instance, before, after, written)

        def class_override(cls, instance, before, after, written):
            return function(cls, instance, before, after, written)

    else:

        def override(instance, before, after):
            return _seen8a_payload(kind, instance, before, after)

        def class_override(cls, instance, before, after):
            return _seen8a_payload(kind, instance, before, after)

    return staticmethod(override) if kind == "static" else classmethod(class_override)


@pytest.mark.parametrize("four", [True, False], ids=["with-written", "three-arguments"])
@pytest.mark.parametrize("kind", ["static", "class", "callable"])
def test_an_updated_payload_override_of_any_kind_is_called_with_the_arguments_it_takes(
    client, monkeypatch, kind, four
):
    """A project's ``updated_payload`` declared as a ``staticmethod`` or ``classmethod``
    was inspected as the class held it and bound with the view's ``self`` counted: one
    taking ``written`` was judged a three-argument override and every PATCH and bulk update
    was a 500 (``TypeError``: missing ``written``); an unhashable callable object was a 500
    too (the answer was cached by the callable, ``TypeError: unhashable type``). Each is
    called with the arguments it takes, and its payload is the event's."""
    from django.urls import resolve

    url = f"/wo/write-only/{client.pk}/"
    view_class = resolve(url).func.cls
    monkeypatch.setattr(view_class, "updated_payload", _seen8a_override(kind, four))
    events = _rf44_updated_once_and_in_bulk(client, url)
    arity = 4 if four else 3
    assert [(e.payload["by"], e.payload["arity"], e.payload["changed"]) for e in events] == [
        (kind, arity, ["title"]),
        (kind, arity, ["title"]),
    ]


class WriteOnlyRefsSerializer(serializers.ModelSerializer):
    class Meta:
        model = RefHolder
        fields = ["id", "name", "code", "codes"]
        extra_kwargs = {"code": {"write_only": True}, "codes": {"write_only": True}}


class WriteOnlyRefsResource(Resource):
    model = RefHolder
    name = "wo-refs"
    serializer_class = WriteOnlyRefsSerializer
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}


def test_a_write_only_relation_is_named_in_changed_only_when_it_changed(settings):
    """A write-only foreign key was read as its row (a query, every PATCH sending it, per
    item in a bulk update) and a write-only many-to-many field as a fresh manager, which
    never equals the last one: a PATCH sending the relations the row holds named ``codes``
    as changed. The key is compared by its column and no query is made for it; a
    many-to-many field (no value the row holds) is not named."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    site = ResourceSite(name="wo-refs-site")
    site.register(WriteOnlyRefsResource)
    with site_mounted(settings, "worefs", site):
        api = client_for(None)
        one, two = CodeThing.objects.create(code="c1"), CodeThing.objects.create(code="c2")
        holder = RefHolder.objects.create(name="h", code=one)
        holder.codes.set([one])
        url = f"/worefs/wo-refs/{holder.pk}/"
        table = CodeThing._meta.db_table
        reads = []
        for body in (
            {"code": one.pk, "codes": [one.pk]},
            {"code": two.pk},
            {"codes": [two.pk]},
        ):
            with CaptureQueriesContext(connection) as ctx:
                r = api.patch(url, body, format="json")
            assert r.status_code == 200, r.content
            reads.append(sum(f'FROM "{table}"' in q["sql"] for q in ctx.captured_queries))
        events = OutboxEvent.objects.filter(type="wo-refs.updated").order_by("created_at", "pk")
        assert [e.payload["changed"] for e in events] == [[], ["code"], []]
        # validation's lookups, the row's prefetch of ``codes`` and the many-to-many write;
        # before, one more for each PATCH sending ``code`` (its row loaded for the event)
        assert reads == [5, 3, 4]
        holder.refresh_from_db()
        assert (holder.code_id, list(holder.codes.all())) == (two.pk, [two])


def test_an_updated_payload_a_view_sets_on_itself_does_not_keep_the_view(client, monkeypatch):
    """``_takes_written`` remembers its answer per attribute a view holds, meant for a
    class's function, ``staticmethod`` or ``classmethod``: one a view sets on itself per
    request (``self.updated_payload = self.payload_for_tenant`` in ``initial()``) is a new
    bound method each time, and each was kept as a key, holding its view, its request and
    its response for the life of the process. Such an attribute is inspected on each call,
    remembered by nothing: the views are freed, and each is still called with the arguments
    it takes."""
    import gc
    import weakref

    from django.urls import resolve

    url = f"/wo/write-only/{client.pk}/"
    view_class = resolve(url).func.cls
    initial = view_class.initial
    views = []

    def payload_of_this_request(self, instance, before, after):
        return {**self.__class__.updated_payload(self, instance, before, after), "by": "own"}

    def initial_setting_its_own(self, request, *args, **kwargs):
        self.updated_payload = payload_of_this_request.__get__(self)
        views.append(weakref.ref(self))
        return initial(self, request, *args, **kwargs)

    monkeypatch.setattr(view_class, "initial", initial_setting_its_own)
    for title in ("Desk lamp", "Floor lamp"):
        r = client.patch(url, {"title": title}, format="json")
        assert r.status_code == 200, r.content
    del r
    gc.collect()
    assert len(views) == 2
    assert [ref() for ref in views] == [None, None]
    events = OutboxEvent.objects.filter(type="write-only.updated").order_by("created_at", "pk")
    assert [e.payload["by"] for e in events] == ["own", "own"]
