"""PostgreSQL's structured fields (rev-pgfields): ``ArrayField``, ``HStoreField``, range
fields and ``JSONField`` on a tenant's resource, end to end: the query language, writes,
keyset walks, events, idempotency, the system checks and the schema.

``Specimen``'s table exists on SQLite too (SQLite takes any column type name); only the tests
reading or writing its PostgreSQL columns need PostgreSQL."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange, NumericRange
from drf_spectacular.generators import SchemaGenerator

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.checks import check_resource
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Specimen

pytestmark = pytest.mark.django_db

rev_pgfields_site = ResourceSite(name="rev-pgfields")
REV_PGFIELDS_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}
rev_pgfields_needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="reads and writes PostgreSQL's column types"
)


@rev_pgfields_site.register
class RevPgfieldsSpecimenResource(Resource):
    model = Specimen
    name = "specimens"
    fields = [
        "id",
        "organization",
        "name",
        "label",
        "numbers",
        "words",
        "grid",
        "attrs",
        "span",
        "window",
        "data",
    ]
    filter_fields = {
        "label": ["eq", "contains", "icontains", "startswith"],
        "numbers": ["eq", "ne", "in", "gt", "exists"],
        "words": ["eq", "in", "gt"],
        "grid": ["eq"],
        "attrs": ["eq", "in"],
        "span": ["eq", "gt"],
        "window": ["eq", "gt"],
    }
    sort_fields = ["name", "numbers", "words", "span", "window"]
    search_fields = ["label"]
    presets = [presets.MultiTenant(), presets.Audited()]
    permissions = REV_PGFIELDS_MEMBERS
    idempotent = True


def _rev_pgfields_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api


@pytest.fixture
def rev_pgfields_api(settings):
    org = OrganizationFactory()
    with site_mounted(settings, "pg", rev_pgfields_site):
        yield org, _rev_pgfields_member(org)


def _rev_pgfields_rows(org):
    return [
        Specimen.objects.create(
            organization=org,
            name="a",
            numbers=[1, 2],
            words=["x"],
            grid=[[1, 2], [3, 4]],
            attrs={"k": "v"},
            span=NumericRange(1, 5),
            window=DateTimeTZRange("2024-01-01T00:00:00Z", None),
        ),
        Specimen.objects.create(
            organization=org,
            name="b",
            numbers=[3],
            words=["y", "z"],
            attrs={"k": "w"},
            span=NumericRange(2, 5),
            window=DateTimeTZRange("2024-01-02T00:00:00.123456Z", None),
        ),
        Specimen.objects.create(
            organization=org, name="c", numbers=[4], words=["z"], span=NumericRange(3, 5)
        ),
    ]


@rev_pgfields_needs_postgres
@pytest.mark.parametrize(
    "param, value",
    [
        ("grid", "[[1],[2,3]]"),  # PostgreSQL's arrays of arrays are rectangular
        ("numbers", "[99999999999]"),  # beyond the integer column
        ("numbers[in]", "[[99999999999]]"),  # one JSON array of values
        ("words", '["\\u0000"]'),  # no NUL in PostgreSQL's text
        ("attrs", "1"),  # hstore = integer
        ("attrs", "[1]"),
        ("attrs", '{"\\u0000":"v"}'),
        ("attrs[in]", "1,2"),
        ("span", '{"lower":5,"upper":1}'),  # lower bound above the upper
        ("span[gt]", '{"lower":2147483648}'),
        ("window", '{"lower":"2024-02-01T00:00:00Z","upper":"2024-01-01T00:00:00Z"}'),
        ("words", '"abc"'),  # read as the array ["a", "b", "c"]
        ("numbers", '{"1":2}'),  # read as the array [1]
    ],
)
def test_rev_pgfields_a_structured_filter_value_the_column_cannot_take_is_a_400_naming_it(
    rev_pgfields_api, param, value
):
    org, api = rev_pgfields_api
    _rev_pgfields_rows(org)
    body = assert_error(api.get("/pg/specimens/", {param: value}), 400, "INVALID_QUERY")
    assert list(body["details"]) == [param]
    assert api.get("/pg/specimens/").json()["total"] == 3


@rev_pgfields_needs_postgres
@pytest.mark.parametrize(
    "param, value, names",
    [
        ("numbers", "[1,2]", ["a"]),
        ("numbers[gt]", "[3]", ["c"]),
        ("words", '["y","z"]', ["b"]),
        ("grid", "[[1,2],[3,4]]", ["a"]),
        ("attrs", '{"k":"v"}', ["a"]),
        ("span", '{"lower":2,"upper":5}', ["b"]),
        ("span", '{"lower":2,"upper":4,"bounds":"[]"}', ["b"]),  # the same integers
        ("span[gt]", '{"lower":2,"upper":5}', ["c"]),
        ("window", '{"lower":"2024-01-01T00:00:00Z"}', ["a"]),
        ("window", '{"lower":"2024-01-02T00:00:00.123456Z","upper":null}', ["b"]),
    ],
)
def test_rev_pgfields_structured_filters_match_the_rows_holding_the_value(
    rev_pgfields_api, param, value, names
):
    org, api = rev_pgfields_api
    _rev_pgfields_rows(org)
    other = OrganizationFactory()
    _rev_pgfields_rows(other)  # another tenant's equal rows are never listed
    r = api.get("/pg/specimens/", {param: value})
    assert r.status_code == 200, r.content
    assert [row["name"] for row in r.json()["docs"]] == names
    assert {row["organization"] for row in r.json()["docs"]} == {org.pk}


@rev_pgfields_needs_postgres
@pytest.mark.parametrize(
    "body",
    [
        {"grid": [[1], [2, 3]]},
        {"attrs": {"\u0000": "v"}},
        {"span": {"lower": 1, "upper": 5, "bounds": "[)"}},  # sent to the driver as hstore
        {"span": "[1,5)"},  # json.loads' error
        {"span": {"lower": 5, "upper": 1}},
        {"span": {"lower": 1, "upper": 2147483648}},
        {"span": {"lower": "x"}},
        {"span": {"lower": 1, "bounds": "<>"}},
        {"span": {"middle": 1}},
        {"window": {"lower": "2024-02-01T00:00:00Z", "upper": "2024-01-01T00:00:00Z"}},
    ],
)
def test_rev_pgfields_a_structured_body_value_is_written_or_refused_naming_its_field(
    rev_pgfields_api, body
):
    org, api = rev_pgfields_api
    (field,) = body
    sent = {"name": "n", **body}
    r = api.post("/pg/specimens/", sent, format="json")
    if field == "span" and body["span"] == {"lower": 1, "upper": 5, "bounds": "[)"}:
        assert r.status_code == 201, r.content
        assert Specimen.objects.get().span == NumericRange(1, 5)
        return
    details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
    assert list(details) == [field]
    assert not Specimen.objects.exists()


@rev_pgfields_needs_postgres
def test_rev_pgfields_a_range_is_written_rendered_and_sent_in_events_as_an_object(
    rev_pgfields_api,
):
    org, api = rev_pgfields_api
    sent = {
        "name": "n",
        "span": {"lower": 1, "upper": 5},
        "window": {"lower": "2024-01-01T00:00:00Z", "upper": "2024-02-01T00:00:00+02:00"},
    }
    r = api.post("/pg/specimens/", sent, format="json")
    assert r.status_code == 201, r.content
    row = Specimen.objects.get()
    assert row.span == NumericRange(1, 5, "[)")
    assert row.window.lower.isoformat() == "2024-01-01T00:00:00+00:00"
    assert row.window.upper.isoformat() == "2024-01-31T22:00:00+00:00"
    shown = api.get(f"/pg/specimens/{row.pk}/").json()["data"]
    assert shown["span"] == {"lower": 1, "upper": 5, "bounds": "[)"}
    assert shown["window"] == {
        "lower": "2024-01-01T00:00:00Z",
        "upper": "2024-01-31T22:00:00Z",
        "bounds": "[)",
    }
    r = api.patch(f"/pg/specimens/{row.pk}/", {"span": {"empty": True}}, format="json")
    assert r.status_code == 200, r.content
    assert Specimen.objects.get().span.isempty
    assert api.get(f"/pg/specimens/{row.pk}/").json()["data"]["span"] == {"empty": True}
    created = OutboxEvent.objects.get(type="specimens.created").payload
    assert created["data"]["span"] == {"lower": 1, "upper": 5, "bounds": "[)"}
    updated = OutboxEvent.objects.get(type="specimens.updated").payload
    assert updated["changed"] == ["span"]
    assert updated["previous"]["span"] == {"lower": 1, "upper": 5, "bounds": "[)"}
    assert updated["data"]["span"] == {"empty": True}


@rev_pgfields_needs_postgres
@pytest.mark.parametrize("sort", ["span", "-span", "window", "words", "-numbers"])
def test_rev_pgfields_a_walk_sorted_by_a_structured_field_pages_every_row_once(
    rev_pgfields_api, sort
):
    org, api = rev_pgfields_api
    _rev_pgfields_rows(org)
    names, cursor = [], ""
    for _ in range(5):
        r = api.get("/pg/specimens/", {"sort": sort, "limit": 1, "after": cursor})
        assert r.status_code == 200, r.content
        names += [row["name"] for row in r.json()["docs"]]
        cursor = r.json()["next"]
        if not cursor:
            break
    assert sorted(names) == ["a", "b", "c"]


@rev_pgfields_needs_postgres
def test_rev_pgfields_a_replay_matches_a_body_whose_objects_list_keys_in_another_order(
    rev_pgfields_api,
):
    org, api = rev_pgfields_api
    body = {"name": "n", "attrs": {"a": "1", "b": "2"}, "data": {"x": {"b": [1], "a": None}}}
    first = api.post("/pg/specimens/", body, format="json", HTTP_IDEMPOTENCY_KEY="rev-pg-1")
    assert first.status_code == 201, first.content
    reordered = json.dumps(
        {"data": {"x": {"a": None, "b": [1]}}, "attrs": {"b": "2", "a": "1"}, "name": "n"}
    )
    again = api.post(
        "/pg/specimens/",
        reordered,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="rev-pg-1",
    )
    assert again.status_code == 201 and again["X-Idempotency-Replayed"] == "true"
    assert Specimen.objects.count() == 1


class RevPgfieldsHstoreSorted(Resource):
    model = Specimen
    name = "hstore-sorted"
    fields = ["id", "attrs"]
    sort_fields = ["attrs"]
    filter_fields = {"attrs": ["gt"]}
    permissions = REV_PGFIELDS_MEMBERS


def test_rev_pgfields_an_hstore_cannot_be_sorted_nor_bounded():
    """``hstore`` has no ``<``/``>`` (its btree order is ``#<#``): a bound, and the page
    after one sorted by it (a keyset cursor's bound), were PostgreSQL's 500s."""
    found = {(e.id, e.msg) for e in check_resource(RevPgfieldsHstoreSorted())}
    assert ("arc.E004", "hstore field 'attrs' cannot be sorted (`sort_fields`).") in found
    assert ("arc.E003", "operator 'gt' cannot compare HStoreField 'attrs'.") in found


def test_rev_pgfields_the_schema_documents_a_range_as_an_object_of_typed_bounds():
    schema = SchemaGenerator(patterns=rev_pgfields_site.urls[0]).get_schema(public=True)
    properties = schema["components"]["schemas"]["RevPgfieldsSpecimen"]["properties"]
    span = properties["span"]
    assert span["type"] == "object" and span["nullable"] is True
    assert span["properties"]["lower"]["type"] == "integer"
    assert span["properties"]["upper"]["maximum"] == 2**31 - 1
    assert span["properties"]["bounds"]["enum"] == ["()", "(]", "[)", "[]"]
    assert properties["window"]["properties"]["lower"]["format"] == "date-time"
    assert properties["attrs"]["type"] == "object"
    assert properties["grid"]["items"]["items"]["type"] == "integer"


@rev_pgfields_site.register
class RevPgfieldsGuardedSpecimenResource(Resource):
    model = Specimen
    name = "guarded-specimens"
    fields = ["id", "organization", "name", "numbers", "attrs", "data"]
    presets = [presets.MultiTenant()]
    permissions = REV_PGFIELDS_MEMBERS
    field_permissions = {"data": F.writable_by("admin"), "attrs": F.read_only()}


@rev_pgfields_needs_postgres
@pytest.mark.parametrize(
    "body, refused",
    [
        ({"data": {"x": 1}}, ["data"]),
        ({"data": {"old": {"key": 2}}}, ["data"]),  # a key within: the whole value is written
        ({"attrs": {"k": "w"}}, ["attrs"]),
        ({"name": "m", "data": {"old": {"key": 1}}, "attrs": {"k": "v"}}, ["attrs", "data"]),
    ],
)
def test_rev_pgfields_no_key_of_a_guarded_json_or_hstore_field_is_written(
    rev_pgfields_api, body, refused
):
    org, api = rev_pgfields_api
    row = Specimen.objects.create(
        organization=org, name="n", attrs={"k": "v"}, data={"old": {"key": 1}}
    )
    r = api.patch(f"/pg/guarded-specimens/{row.pk}/", body, format="json")
    assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {"fields": refused}
    row.refresh_from_db()
    assert (row.name, row.attrs, row.data) == ("n", {"k": "v"}, {"old": {"key": 1}})


@rev_pgfields_needs_postgres
@pytest.mark.parametrize(
    "param, value",
    [
        ("label", "hello"),  # = compares under the column's collation: case-insensitive
        ("label[icontains]", "ELL"),
        ("label[contains]", "ell"),
        ("label[startswith]", "He"),
        ("search", "ell"),
    ],
)
def test_rev_pgfields_text_operators_match_a_column_with_a_nondeterministic_collation(
    rev_pgfields_api, param, value
):
    """PostgreSQL refuses ``LIKE`` on a column with a nondeterministic collation (the
    case-insensitive ICU collations that replace ``CICharField``): a text operator or a
    search on one was its ``NotSupportedError``, a 500."""
    org, api = rev_pgfields_api
    Specimen.objects.create(organization=org, name="a", label="Hello")
    Specimen.objects.create(organization=org, name="b", label="other")
    Specimen.objects.create(organization=OrganizationFactory(), name="c", label="Hello")
    r = api.get("/pg/specimens/", {param: value})
    assert r.status_code == 200, r.content
    assert [row["name"] for row in r.json()["docs"]] == ["a"]
