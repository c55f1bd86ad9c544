"""Nulls, blanks and empty values end to end (rev-nulls): what ``?field=``, ``?field=null``,
an empty ``[in]`` and ``[exists]`` mean on every filterable type, and what a body's ``""``
and ``null`` write. Every value either has the meaning docs/query-language.md gives it or is
a 400 naming the parameter or field; none is read as another value."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps

from django_arc import Resource
from django_arc import permissions as P
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.test_extension_points import mounted_site
from tests.testapp.models import PagedRow

pytestmark = pytest.mark.django_db

NULLS_FIELDS = ["label", "rank", "amount", "ratio", "day", "at", "clock", "length", "flag", "token"]
NULLS_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"]


class NullsRows(Resource):
    """Every sortable type, nullable, with every operator: the rows of the null walks."""

    model = PagedRow
    name = "nulls-rows"
    fields = ["id", *NULLS_FIELDS, "parent"]
    filter_fields = {
        **{f: NULLS_OPS for f in NULLS_FIELDS},
        "label": [*NULLS_OPS, "contains"],
        "parent": NULLS_OPS,
    }
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}


@pytest.fixture
def nulls_site(settings):
    with mounted_site(settings, "nulls", NullsRows):
        yield


@pytest.fixture
def nulls_rows(nulls_site):
    """A row with every value, one with the empty text and a zero duration, one holding the
    text ``null``, and one with every column NULL."""
    full = PagedRow.objects.create(
        label="x",
        rank=1,
        amount=Decimal("1.50"),
        ratio=1.5,
        day=dt.date(2024, 1, 1),
        at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        clock=dt.time(1),
        length=dt.timedelta(days=1),
        flag=True,
        token=uuid.uuid4(),
    )
    blank = PagedRow.objects.create(label="", length=dt.timedelta(0), parent=full)
    text_null = PagedRow.objects.create(label="null")
    nothing = PagedRow.objects.create()
    return {"full": full.pk, "blank": blank.pk, "null": text_null.pk, "nothing": nothing.pk}


def nulls_ids(api, query):
    r = api.get(f"/nulls/nulls-rows/?select=id&limit=100&{query}")
    assert r.status_code == 200, r.content
    return {d["id"] for d in r.json()["docs"]}


def nulls_refusal(api, query):
    r = api.get(f"/nulls/nulls-rows/?{query}")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == "INVALID_QUERY"
    return body["details"]


@pytest.mark.parametrize(
    ("op", "value"),
    [
        (op, value)
        for op in ["", "[eq]", "[ne]", "[gt]", "[lte]", "[in]", "[nin]"]
        for value in ["", "P", "PT", "-P", "%2BPT"]
        # an empty [in]/[nin] is the empty list (test_empty_in_and_nin_lists)
        if not (op in ("[in]", "[nin]") and value == "")
    ],
)
def test_a_duration_filter_without_a_digit_is_400_not_the_zero_duration(api, nulls_rows, op, value):
    """Django's ``parse_duration`` reads ``""``, ``P`` and ``PT`` as zero: ``?length=``
    listed the rows lasting zero, ``?length[gt]=`` the longer ones."""
    details = nulls_refusal(api, f"length{op}={value}")
    sent = value.replace("%2B", "+")
    assert details == {f"length{op}": f"'{sent}' is not a valid duration"}


def test_a_duration_filter_with_digits_still_reads_zero_and_iso(api, nulls_rows):
    assert nulls_ids(api, "length=0") == {nulls_rows["blank"]}
    assert nulls_ids(api, "length=P0D") == {nulls_rows["blank"]}
    assert nulls_ids(api, "length[gt]=PT0S") == {nulls_rows["full"]}


@pytest.mark.parametrize("value", ["", "P", "PT"])
def test_a_body_duration_without_a_digit_is_400_not_a_stored_zero(api, nulls_site, value):
    """DRF's ``DurationField`` read ``""`` as zero: ``{"length": ""}`` stored ``00:00:00``
    where ``{"at": ""}``, ``{"ratio": ""}`` and ``{"token": ""}`` are 400 naming the field."""
    r = api.post("/nulls/nulls-rows/", {"label": "a", "length": value}, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == ["length"]
    assert not PagedRow.objects.exists()
    row = PagedRow.objects.create(length=dt.timedelta(seconds=5))
    r = api.patch(f"/nulls/nulls-rows/{row.pk}/", {"length": value}, format="json")
    assert r.status_code == 400, r.content
    row.refresh_from_db()
    assert row.length == dt.timedelta(seconds=5)
    r = api.patch(f"/nulls/nulls-rows/{row.pk}/", {"length": None}, format="json")
    assert r.status_code == 200 and r.json()["data"]["length"] is None


def test_empty_and_null_text_are_values_of_a_text_field(api, nulls_rows):
    """On a text field ``?label=`` is the empty text and ``?label=null`` the text ``null``
    (as django-filter reads them; a NULL is ``[exists]=false``), never every row."""
    assert nulls_ids(api, "label=") == {nulls_rows["blank"]}
    assert nulls_ids(api, "label=null") == {nulls_rows["null"]}
    assert nulls_ids(api, "label[eq]=null") == {nulls_rows["null"]}
    # ne keeps the NULL rows, as nin does (SQL's three-valued logic does not leak through)
    assert nulls_ids(api, "label[ne]=null") == set(nulls_rows.values()) - {nulls_rows["null"]}
    assert nulls_ids(api, "label[nin]=x") == set(nulls_rows.values()) - {nulls_rows["full"]}
    # every text contains the empty text; a NULL holds none
    assert nulls_ids(api, "label[contains]=") == set(nulls_rows.values()) - {nulls_rows["nothing"]}
    assert nulls_ids(api, "label[exists]=false") == {nulls_rows["nothing"]}
    assert nulls_ids(api, "label[exists]=0") == {nulls_rows["nothing"]}
    assert nulls_ids(api, "label[exists]=true") == set(nulls_rows.values()) - {
        nulls_rows["nothing"]
    }


@pytest.mark.parametrize("field", [f for f in NULLS_FIELDS if f != "label"] + ["parent"])
@pytest.mark.parametrize("value", ["", "null", "None"])
@pytest.mark.parametrize("op", ["", "[eq]", "[ne]", "[gte]"])
def test_empty_and_null_on_a_typed_field_are_400_naming_the_parameter(
    api, nulls_rows, field, value, op
):
    details = nulls_refusal(api, f"{field}{op}={value}")
    assert list(details) == [f"{field}{op}"]


@pytest.mark.parametrize("field", [*NULLS_FIELDS, "parent"])
def test_empty_in_and_nin_lists(api, nulls_rows, field):
    """``[in]=`` is the empty list (no row), ``[nin]=`` excludes nothing (every row, NULLs
    included); empty items are skipped (``a,,b`` is ``a,b``)."""
    everyone = set(nulls_rows.values())
    assert nulls_ids(api, f"{field}[in]=") == set()
    assert nulls_ids(api, f"{field}[in]=,") == set()
    assert nulls_ids(api, f"{field}[nin]=") == everyone
    assert nulls_ids(api, f"{field}[nin]=,,") == everyone


def test_empty_in_items_are_skipped(api, nulls_rows):
    assert nulls_ids(api, "label[in]=x,,null") == {nulls_rows["full"], nulls_rows["null"]}
    assert nulls_ids(api, "rank[in]=1,,") == {nulls_rows["full"]}
    assert nulls_refusal(api, "rank[in]=1,null") == {"rank[in]": "'null' is not a valid integer"}


@pytest.mark.parametrize("value", ["", "maybe", "yes", "null"])
def test_exists_takes_true_or_false_only(api, nulls_rows, value):
    assert nulls_refusal(api, f"rank[exists]={value}") == {"rank[exists]": "must be true or false"}


def test_isnull_is_no_operator(api, nulls_rows):
    assert nulls_refusal(api, "rank[isnull]=true") == {"rank[isnull]": "unknown operator 'isnull'"}


class NullsCachedRows(NullsRows):
    name = "nulls-cached-rows"
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_empty_null_and_absent_filters_never_share_a_cached_answer(api, settings):
    """The query cache keys the parsed query: ``?label=`` (the empty text), no parameter
    (every row), ``?label=null`` (the text), an empty ``[in]`` (no row) and an empty
    ``[nin]`` (every row) are each answered as uncached, first and second time alike."""
    with query_cache_on_redis(), mounted_site(settings, "nulls-cached", NullsCachedRows):
        blank = PagedRow.objects.create(label="").pk
        text = PagedRow.objects.create(label="null").pk
        nothing = PagedRow.objects.create().pk
        expected = {
            "label=": {blank},
            "": {blank, text, nothing},
            "label=null": {text},
            "label[exists]=false": {nothing},
            "label[in]=": set(),
            "label[nin]=": {blank, text, nothing},
        }
        for attempt in ("MISS", "HIT"):
            for query, ids in expected.items():
                r = api.get(f"/nulls-cached/nulls-cached-rows/?select=id&{query}")
                assert r.status_code == 200, r.content
                assert r["X-Cache"] == attempt, query
                assert {d["id"] for d in r.json()["docs"]} == ids, query


@pytest.mark.parametrize("select", ["", ",", "%20", ",%20,"])
def test_a_select_naming_no_field_selects_every_readable_field(api, nulls_rows, select):
    """``select=`` renders every readable field; ``select=,`` and ``select=%20`` name no
    field either, yet rendered the primary key alone (arc 2.9 reads them as no select)."""
    r = api.get(f"/nulls/nulls-rows/?sort=&select={select}")
    assert r.status_code == 200, r.content
    assert set(r.json()["docs"][0]) == {"id", *NULLS_FIELDS, "parent"}
    r = api.get("/nulls/nulls-rows/?select=,rank,")
    assert set(r.json()["docs"][0]) == {"id", "rank"}


@pytest.fixture
def nulls_hosts(settings, transactional_db):
    """A table with a nullable ``GenericIPAddressField`` and two choices fields, one with
    ``blank=True``, for one test (the test models have none), listed publicly."""
    with isolate_apps("tests.testapp"):

        class NullsHost(models.Model):
            ip = models.GenericIPAddressField(null=True, blank=True)
            grade = models.CharField(
                max_length=1, choices=[("a", "A"), ("b", "B")], blank=True, default=""
            )
            tier = models.CharField(max_length=1, choices=[("x", "X"), ("y", "Y")], default="x")

            class Meta:
                app_label = "testapp"

    class NullsHosts(Resource):
        model = NullsHost
        name = "nulls-hosts"
        fields = ["id", "ip", "grade", "tier"]
        filter_fields = {
            "ip": ["eq", "ne", "gt", "in", "nin", "exists"],
            "grade": ["eq", "ne", "in"],
            "tier": ["eq", "ne", "in"],
        }
        sort_fields = ["ip"]
        permissions = {"list": P.allow_public(), "get": P.allow_public()}

    with connection.schema_editor() as editor:
        editor.create_model(NullsHost)
    try:
        with mounted_site(settings, "nulls-hosts", NullsHosts):
            yield NullsHost
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(NullsHost)


@pytest.mark.django_db(transaction=True)
def test_an_ip_address_filter_takes_addresses_only(api, nulls_hosts):
    """``GenericIPAddressField.to_python()`` checks only a value with a colon: ``?ip=abc``
    was PostgreSQL's "invalid input syntax for type inet" (a 500) and no row on SQLite;
    ``?ip=`` is NULL to the database, so it matched no row and ``?ip[ne]=`` only the rows
    without an address. Now each is 400 naming the parameter; addresses still match, an
    IPv6 one in any spelling, and ``[exists]=false`` finds the rows without one."""
    v4 = nulls_hosts.objects.create(ip="10.0.0.1").pk
    v6 = nulls_hosts.objects.create(ip="::1").pk
    none = nulls_hosts.objects.create(ip=None).pk
    for query in ["ip=", "ip[ne]=", "ip=abc", "ip[ne]=abc", "ip=null", "ip[gt]=", "ip[in]=x"]:
        r = api.get(f"/nulls-hosts/nulls-hosts/?{query}")
        assert r.status_code == 400, (query, r.content)
        param = query.split("=")[0]
        value = query.split("=", 1)[1]
        assert r.json()["details"] == {param: f"'{value}' is not a valid IP address"}, query

    def listed(query):
        r = api.get(f"/nulls-hosts/nulls-hosts/?{query}")
        assert r.status_code == 200, r.content
        return {d["id"] for d in r.json()["docs"]}

    assert listed("ip=10.0.0.1") == {v4}
    assert listed("ip=0:0:0:0:0:0:0:1") == {v6}
    assert listed("ip[ne]=10.0.0.1") == {v6, none}
    assert listed("ip[in]=10.0.0.1,,%3A%3A1") == {v4, v6}
    assert listed("ip[exists]=false") == {none}
    assert listed("ip[in]=") == set()
    for sort in ("ip", "-ip"):  # a cursor holding an address (or NULL) is read back
        seen, after = [], ""
        while True:
            r = api.get(f"/nulls-hosts/nulls-hosts/?sort={sort}&limit=1&after={after}")
            assert r.status_code == 200, r.content
            seen += [d["id"] for d in r.json()["docs"]]
            if not r.json()["hasNext"]:
                break
            after = r.json()["next"]
        assert sorted(seen) == sorted([v4, v6, none]) and seen[-1] == none, sort


@pytest.mark.django_db(transaction=True)
def test_an_empty_value_is_a_choice_only_of_a_field_that_may_be_blank(api, nulls_hosts):
    """``?tier=zz`` is 400 (fix-seen7) but ``?tier=`` answered an empty list: the empty
    text, which a field without ``blank=True`` never validly holds, was let through as
    Django's ``Field.validate()`` lets it through a blank field. Now it is 400 too; on a
    field with ``blank=True`` it still finds the rows holding ``""``."""
    blank = nulls_hosts.objects.create(grade="", tier="y").pk
    graded = nulls_hosts.objects.create(grade="a").pk
    for query in ["tier=", "tier[eq]=", "tier[ne]=", "tier=zz", "grade=zz"]:
        r = api.get(f"/nulls-hosts/nulls-hosts/?{query}")
        assert r.status_code == 400, (query, r.content)
        param, value = query.split("=", 1)
        assert r.json()["details"] == {param: f"'{value}' is not a valid choice"}, query

    def listed(query):
        r = api.get(f"/nulls-hosts/nulls-hosts/?{query}")
        assert r.status_code == 200, r.content
        return {d["id"] for d in r.json()["docs"]}

    assert listed("grade=") == {blank}
    assert listed("grade[ne]=") == {graded}
    assert listed("tier=y") == {blank}
    assert listed("tier[in]=,y,") == {blank}


class NullsSearchedRows(NullsRows):
    name = "nulls-searched-rows"
    search_fields = ["label"]


@pytest.mark.parametrize("term", ["%20", "%20%20", "%09", "%0A%20"])
def test_a_search_term_of_whitespace_only_is_ignored(api, settings, term):
    """An empty ``search`` is ignored; one of whitespace only listed the rows whose text
    holds a space (and was 400 where no field is searched). Now both are ignored."""
    with mounted_site(settings, "nulls-searched", NullsRows, NullsSearchedRows):
        spaced = PagedRow.objects.create(label="a b").pk
        plain = PagedRow.objects.create(label="ab").pk
        r = api.get(f"/nulls-searched/nulls-searched-rows/?select=id&search={term}")
        assert r.status_code == 200, r.content
        assert {d["id"] for d in r.json()["docs"]} == {spaced, plain}
        r = api.get(f"/nulls-searched/nulls-rows/?select=id&search={term}")
        assert r.status_code == 200, r.content
        r = api.get("/nulls-searched/nulls-searched-rows/?select=id&search=a%20")
        assert {d["id"] for d in r.json()["docs"]} == {spaced}
        r = api.get("/nulls-searched/nulls-rows/?search=a")
        assert r.status_code == 400, r.content
