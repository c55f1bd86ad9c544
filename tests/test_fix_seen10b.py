"""fix-seen10b: what the reviews of PostgreSQL's structured fields (rev-pgfields,
rev-fixes51) saw and left: ``[in]``/``[nin]`` of an array, hstore or range (split on
commas), the schema of their filters (a plain string), a range written from a form (always
400), the query cache's keys of an hstore filter, and a time range with an ``infinity``
bound written outside the API (a 500 on read)."""

from __future__ import annotations

import base64
import json
import re
from html import unescape

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange, NumericRange
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.testapp.models import Specimen

pytestmark = pytest.mark.django_db

fs10b_site = ResourceSite(name="fix-seen10b")
fs10b_needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="reads and writes PostgreSQL's column types"
)
FS10B_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}


@fs10b_site.register
class Fs10bSpecimenResource(Resource):
    model = Specimen
    name = "specimens"
    fields = ["id", "organization", "name", "numbers", "words", "grid", "attrs", "span", "window"]
    filter_fields = {
        "numbers": ["eq", "in", "nin"],
        "words": ["in"],
        "grid": ["in"],
        "attrs": ["eq", "in", "nin"],
        "span": ["eq", "in", "nin"],
        "window": ["in", "exists"],
    }
    sort_fields = ["name", "window"]
    presets = [presets.MultiTenant()]
    permissions = FS10B_MEMBERS


@fs10b_site.register
class Fs10bCachedSpecimenResource(Fs10bSpecimenResource):
    name = "cached-specimens"
    cache = {"stale_seconds": 30}


@fs10b_site.register
class Fs10bBulkSpecimenResource(Fs10bSpecimenResource):
    name = "bulk-specimens"
    presets = [presets.MultiTenant(), presets.Bulk()]


def _fs10b_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api


@pytest.fixture
def fs10b_api(settings):
    org = OrganizationFactory()
    with site_mounted(settings, "fs10b", fs10b_site):
        yield org, _fs10b_member(org)


def _fs10b_rows(org):
    """a, b, c in ``org``; another tenant's row equal to a (never listed)."""
    other = OrganizationFactory()
    for owner, name, numbers, attrs, span in (
        (org, "a", [1, 2], {"k": "v", "j": "1"}, NumericRange(1, 5)),
        (org, "b", [3], {"k": "w"}, NumericRange(2, 5)),
        (org, "c", [], {}, None),
        (other, "x", [1, 2], {"k": "v", "j": "1"}, NumericRange(1, 5)),
    ):
        Specimen.objects.create(
            organization=owner,
            name=name,
            numbers=numbers,
            words=[name],
            grid=[[len(numbers)]],
            attrs=attrs,
            span=span,
        )


def _fs10b_names(response):
    assert response.status_code == 200, response.content
    return sorted(row["name"] for row in response.json()["docs"])


# -- 1. [in]/[nin] of a structured field: one JSON array of values ----------------------------


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "param, value, names",
    [
        # an array of two elements: split on commas it was "[1" and "2]" (400)
        ("numbers[in]", "[[1,2],[3]]", ["a", "b"]),
        ("numbers[in]", "[[1, 2]]", ["a"]),
        ("numbers[nin]", "[[1,2],[3]]", ["c"]),
        ("numbers[in]", "[]", []),
        ("numbers[nin]", "[]", ["a", "b", "c"]),
        ("words[in]", '[["a"],["c"]]', ["a", "c"]),
        ("grid[in]", "[[[2]],[[0]]]", ["a", "c"]),
        # an hstore of two keys: split on commas it was two halves of an object (400)
        ("attrs[in]", '[{"j":"1","k":"v"},{"k":"w"}]', ["a", "b"]),
        ("attrs[nin]", '[{"k":"w"}]', ["a", "c"]),
        # a bounded range: split on commas it was two halves of an object (400)
        ("span[in]", '[{"lower":1,"upper":5},{"lower":2,"upper":4,"bounds":"[]"}]', ["a", "b"]),
        # a null span is none of them, as ``nin`` on any nullable field
        ("span[nin]", '[{"lower":1,"upper":5}]', ["b", "c"]),
    ],
)
def test_fs10b_in_and_nin_of_a_structured_field_take_a_json_array_of_values(
    fs10b_api, param, value, names
):
    org, api = fs10b_api
    _fs10b_rows(org)
    assert _fs10b_names(api.get("/fs10b/specimens/", {param: value})) == names


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "param, value",
    [
        ("numbers[in]", "[1,2],[3]"),  # the old comma-separated spelling: no JSON
        ("numbers[in]", "[1]"),  # the value 1, no array
        ("numbers[in]", '{"a":1}'),
        ("numbers[in]", "[[99999999999]]"),  # beyond the integer column
        ("numbers[in]", "[[NaN]]"),
        ("numbers[nin]", "[" + ",".join(["[1]"] * 501) + "]"),  # at most 500 values
        ("grid[in]", "[[[1],[2,3]]]"),  # PostgreSQL's arrays of arrays are rectangular
        ("attrs[in]", '[{"\\u0000":"v"}]'),
        ("attrs[in]", "[[1]]"),
        ("span[in]", '[{"lower":5,"upper":1}]'),
        ("span[nin]", '[{"lower":1,"bounds":["[)"]}]'),
        ("window[in]", '[{"lower":"yesterday"}]'),
        ("numbers[in]", "[" * 100_000),  # nested beyond Python's recursion
    ],
)
def test_fs10b_a_structured_in_value_the_column_cannot_take_is_a_400_naming_it(
    fs10b_api, param, value
):
    org, api = fs10b_api
    _fs10b_rows(org)
    body = assert_error(api.get("/fs10b/specimens/", {param: value}), 400, "INVALID_QUERY")
    assert list(body["details"]) == [param]


@fs10b_needs_postgres
def test_fs10b_a_bulk_filter_takes_a_structured_in_as_the_query_strings_text(fs10b_api):
    """A bulk update's ``filter`` is the query string's: a structured ``[in]`` is its JSON
    text. A list (joined with commas, as for other fields) is a 400 naming the filter."""
    org, api = fs10b_api
    _fs10b_rows(org)
    url = "/fs10b/bulk-specimens/bulk/"
    body = {"filter": {"numbers[in]": "[[1,2],[3]]"}, "data": {"name": "z"}}
    r = api.patch(url, body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["updated"] == 2
    assert sorted(Specimen.objects.values_list("name", flat=True)) == ["c", "x", "z", "z"]
    body = {"filter": {"numbers[in]": ["[1,2]", "[3]"]}, "data": {"name": "y"}}
    r = api.patch(url, body, format="json")
    assert r.status_code == 400, r.content
    assert "numbers[in]" in json.dumps(r.json()["details"])
    assert not Specimen.objects.filter(name="y").exists()


# -- 2. their schema says JSON, and which ---------------------------------------------------


def test_fs10b_structured_filters_are_documented_as_json_of_their_type():
    schema = SchemaGenerator(patterns=fs10b_site.urls[0]).get_schema(public=True)
    validate_schema(schema)
    listing = schema["paths"]["/specimens/"]["get"]["parameters"]
    params = {p["name"]: p for p in listing if p["in"] == "query"}

    def content(name):
        assert "schema" not in params[name] and "style" not in params[name]
        assert "JSON" in params[name]["description"]
        return params[name]["content"]["application/json"]["schema"]

    assert content("numbers") == {
        "type": "array",
        "items": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    }
    assert content("numbers[in]")["type"] == "array"
    assert content("numbers[in]")["maxItems"] == 500
    assert content("numbers[in]")["items"] == content("numbers")
    assert "comma" not in params["numbers[in]"]["description"]
    assert content("grid[in]")["items"]["items"]["items"]["type"] == "integer"
    assert content("words[in]")["items"]["items"]["type"] == "string"
    assert content("attrs")["type"] == "object"
    assert content("attrs")["additionalProperties"]["type"] == "string"
    span = content("span")
    assert span["properties"]["lower"]["type"] == "integer"
    assert span["properties"]["bounds"]["enum"] == ["()", "(]", "[)", "[]"]
    assert content("span[nin]")["items"] == span
    assert content("window[in]")["items"]["properties"]["upper"]["format"] == "date-time"
    # ``exists`` is no JSON: true or false
    assert params["window[exists]"]["schema"]["type"] == "string"
    # a bulk update's ``filter`` takes the query string's text: a string
    bulk = schema["components"]["schemas"]["PatchedBulkSpecimensBulkUpdateInput"]
    entry = bulk["properties"]["filter"]["properties"]["numbers[in]"]
    assert entry == {"type": "string", "description": params["numbers[in]"]["description"]}


# -- 3. a range written from a form --------------------------------------------------------

_FS10B_HTML = {"HTTP_ACCEPT": "text/html"}


def _fs10b_textareas(page, method):
    html = page.content.decode()
    if method == "POST":
        form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)
    else:
        form = re.search(rf'<form [^>]*data-method="{method}"[^>]*>.*?</form>', html, re.S)
    return {
        m[1]: unescape(m[2])
        for m in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form[0], re.S)
    }


@fs10b_needs_postgres
def test_fs10b_a_range_is_written_from_a_form_as_the_form_shows_it(fs10b_api, monkeypatch):
    """A range field's form input showed the object's Python ``repr`` and its text was
    refused whatever it held (400 "Expected an object"): no form could write a range. The
    form shows the range's JSON, which a form body's value is read as."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org, api = fs10b_api
    row = Specimen.objects.create(
        organization=org,
        name="n",
        span=NumericRange(1, 5),
        window=DateTimeTZRange("2024-01-01T00:00:00Z", None),
    )
    url = f"/fs10b/specimens/{row.pk}/"
    shown = _fs10b_textareas(api.get(url, **_FS10B_HTML), "PUT")
    assert json.loads(shown["span"]) == {"lower": 1, "upper": 5, "bounds": "[)"}
    window = json.loads(shown["window"])
    assert window == {"lower": "2024-01-01T00:00:00Z", "upper": None, "bounds": "[)"}
    # sent back as shown, with the name changed: nothing else moves
    sent = api.put(url, {"name": "m", **shown}, format="multipart")
    assert sent.status_code == 200, sent.content
    row.refresh_from_db()
    assert (row.name, row.span) == ("m", NumericRange(1, 5))
    assert (row.window.lower.isoformat(), row.window.upper) == ("2024-01-01T00:00:00+00:00", None)
    # edited, in either form encoding
    for encoding in ("multipart", "urlencoded"):
        body = {"span": '{"lower": 2, "upper": 4, "bounds": "[]"}'}
        if encoding == "urlencoded":
            r = api.patch(
                url,
                "span=" + json.dumps(body["span"])[1:-1].replace('\\"', '"'),
                content_type="application/x-www-form-urlencoded",
            )
        else:
            r = api.patch(url, body, format="multipart")
        assert r.status_code == 200, r.content
        assert r.json()["data"]["span"] == {"lower": 2, "upper": 5, "bounds": "[)"}
    # blank, or the "null" an empty form shows: null
    assert api.patch(url, {"span": ""}, format="multipart").status_code == 200
    assert Specimen.objects.get().span is None
    create_form = _fs10b_textareas(api.get("/fs10b/specimens/", **_FS10B_HTML), "POST")
    assert create_form["span"] == "null"
    created = api.post("/fs10b/specimens/", {"name": "o", **create_form}, format="multipart")
    assert created.status_code == 201, created.content
    assert created.json()["data"]["span"] is None


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "text, message",
    [
        ("{'lower': 1}", "Value must be valid JSON."),  # the Python repr the form showed
        ("[1,5)", "Value must be valid JSON."),
        ('{"lower": NaN}', "Value must be valid JSON."),
        ("[1, 5]", 'Expected an object of "lower", "upper" and "bounds".'),
        ('{"lower": 5, "upper": 1}', "Its lower bound must not be above its upper bound."),
    ],
)
def test_fs10b_a_forms_range_that_is_no_range_is_a_400_naming_it(fs10b_api, text, message):
    org, api = fs10b_api
    r = api.post("/fs10b/specimens/", {"name": "n", "span": text}, format="multipart")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {"span": [message]}
    assert not Specimen.objects.exists()


@fs10b_needs_postgres
def test_fs10b_a_json_bodys_range_is_an_object_never_text(fs10b_api):
    """Only a form's value is text to parse: a JSON body sends the object itself."""
    org, api = fs10b_api
    r = api.post("/fs10b/specimens/", {"name": "n", "span": '{"lower": 1}'}, format="json")
    assert list(assert_error(r, 400, "VALIDATION_ERROR")["details"]) == ["span"]


# -- 4. the query cache keys a structured filter by its parsed value --------------------------


@fs10b_needs_postgres
@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_fs10b_one_structured_query_spelt_two_ways_is_one_cache_entry(fs10b_api):
    """An hstore's keys in another order, or one field's two conditions whose texts sort
    otherwise than their values, are one query and one entry (they were two); other
    values stay other entries."""
    org, api = fs10b_api
    _fs10b_rows(org)
    url = "/fs10b/cached-specimens/"

    def cached(query):
        r = api.get(url + "?" + query)
        assert r.status_code == 200, r.content
        return r["X-Cache"], sorted(row["name"] for row in r.json()["docs"])

    with query_cache_on_redis():
        for first, again in (
            ('attrs={"k":"v","j":"1"}', 'attrs={"j":"1","k":"v"}'),
            ("numbers=[1,2]", "numbers=[1, 2]"),
            ('span={"lower":1,"upper":5}', 'span={"upper":5,"lower":1,"bounds":"[)"}'),
            ("numbers=[ 3]&numbers[eq]=[1,2]", "numbers=[1,2]&numbers[eq]=[3]"),
            ('attrs[in]=[{"k":"v","j":"1"}]', 'attrs[in]=[{"j":"1","k":"v"}]'),
        ):
            miss = cached(first)
            assert miss[0] == "MISS", first
            assert cached(again) == ("HIT", miss[1]), again
        # other values, other entries
        for first, other, names in (
            ('attrs={"k":"w"}', 'attrs={"k":"v"}', []),
            ("numbers=[3]", "numbers=[2,1]", []),
            ("numbers[in]=[[1,2]]", "numbers[nin]=[[1,2]]", ["b", "c"]),
            ('span={"lower":2,"upper":5}', 'span={"lower":2,"upper":5,"bounds":"[]"}', []),
        ):
            assert cached(first)[0] == "MISS", first
            assert cached(other) == ("MISS", names), other


# -- 5. a time range with an infinite bound written outside the API --------------------------


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "stored, shown",
    [
        (
            '["2020-01-01 00:00:00+00",infinity)',
            {"lower": "2020-01-01T00:00:00Z", "upper": None, "bounds": "[)"},
        ),
        (
            '(-infinity,"2020-01-01 00:00:00+00"]',
            {"lower": None, "upper": "2020-01-01T00:00:00Z", "bounds": "(]"},
        ),
        ("[-infinity,infinity]", {"lower": None, "upper": None, "bounds": "()"}),
    ],
)
def test_fs10b_a_time_range_with_an_infinite_bound_reads_as_unbounded(fs10b_api, stored, shown):
    """psycopg loads no ``infinity`` into a ``datetime``: a row whose range was written so
    by SQL made its list and its get 500s. The bound reads as unbounded, and a save of the
    row for another field writes the range back as PostgreSQL held it."""
    org, api = fs10b_api
    row = Specimen.objects.create(organization=org, name="n")
    Specimen.objects.create(organization=OrganizationFactory(), name="other")
    _fs10b_store_window(row, stored)
    got = api.get(f"/fs10b/specimens/{row.pk}/")
    assert got.status_code == 200, got.content
    assert got.json()["data"]["window"] == shown
    listed = api.get("/fs10b/specimens/", {"window[exists]": "true", "sort": "-window"})
    assert listed.status_code == 200, listed.content
    assert [r["window"] for r in listed.json()["docs"]] == [shown]
    r = api.patch(f"/fs10b/specimens/{row.pk}/", {"name": "m"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["window"] == shown
    assert _fs10b_window_is(row, stored)


def _fs10b_store_window(row, text):
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE testapp_specimen SET "window" = %s::tstzrange WHERE id = %s', [text, row.pk]
        )


def _fs10b_window_is(row, text):
    """Whether ``row``'s range is, in the database, the range ``text`` spells."""
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT "window" = %s::tstzrange FROM testapp_specimen WHERE id = %s', [text, row.pk]
        )
        return cursor.fetchone()[0]


@fs10b_needs_postgres
@pytest.mark.parametrize("sort", ["window", "-window"])
def test_fs10b_a_walk_sorted_by_a_range_with_an_infinite_bound_pages_every_row_once(
    fs10b_api, sort
):
    """Read as unbounded, the cursor after ``[2020-01-01,infinity)`` compared as
    ``[2020-01-01,)``, which PostgreSQL orders after it: each next page served the same
    rows again, for ever. The cursor carries the bound PostgreSQL holds."""
    org, api = fs10b_api
    for name, text in (
        ("inf", "[2020-01-01,infinity)"),
        ("bounded", "[2020-01-01,2021-01-01)"),
        ("open", "[2020-01-01,)"),
        ("later", "[2020-02-01,)"),
        ("ninf", "(-infinity,2020-01-01)"),
        ("nopen", "(,2020-01-01)"),
    ):
        _fs10b_store_window(Specimen.objects.create(organization=org, name=name), text)
    every = api.get("/fs10b/specimens/", {"sort": sort}).json()["docs"]
    names, cursor = [], ""
    for _ in range(10):
        r = api.get("/fs10b/specimens/", {"sort": sort, "limit": 1, "after": cursor})
        assert r.status_code == 200, r.content
        names += [row["name"] for row in r.json()["docs"]]
        cursor = r.json()["next"]
        if not cursor:
            break
    assert names == [row["name"] for row in every]
    assert sorted(names) == ["bounded", "inf", "later", "ninf", "nopen", "open"]


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "window",
    [
        {"lower": "infinity", "upper": "2020-01-01T00:00:00Z", "bounds": "[)"},
        {"lower": "2020-01-01T00:00:00Z", "upper": "-infinity", "bounds": "[)"},
        {"lower": "infinity", "upper": "yesterday", "bounds": "[)"},
        {"lower": "-infinity", "upper": None, "bounds": "<>"},
    ],
)
def test_fs10b_a_forged_cursor_of_an_infinite_range_is_a_400(fs10b_api, window):
    org, api = fs10b_api
    row = Specimen.objects.create(organization=org, name="n")
    payload = json.dumps({"s": "window", "v": [window, row.pk]}).encode()
    cursor = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    r = api.get("/fs10b/specimens/", {"sort": "window", "after": cursor})
    assert assert_error(r, 400, "INVALID_QUERY")["details"] == {"after": "invalid cursor"}
    # a filter's value is no cursor: ``infinity`` is no date there
    r = api.get("/fs10b/specimens/", {"window[in]": json.dumps([window])})
    assert list(assert_error(r, 400, "INVALID_QUERY")["details"]) == ["window[in]"]
