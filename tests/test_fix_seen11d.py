"""fix-seen11d: what the reviews of PostgreSQL's ranges (rev-pgfields, fix-seen10b,
rev-fixes56) and of numbers (rev-numbers, rev-fixes57) saw and left: a project's own
``DecimalField`` reading a JSON number through its float, ``gt``/``gte``/``lt``/``lte`` of
a time range held with ``infinity``, a plain date or time holding ``infinity``, and the
idempotency fingerprint of ``100`` against ``100.0``."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.exceptions import INFINITE_VALUE
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import PagedRow, RevNumTally, Specimen

pytestmark = pytest.mark.django_db

FS11D_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
fs11d_site = ResourceSite(name="fix-seen11d")


class Fs11dPlainDecimal(serializers.DecimalField):
    """A project's subclass with its own reading: it runs on the number's text."""

    def to_internal_value(self, data):
        self.fs11d_seen = data
        return super().to_internal_value(data)


class Fs11dTallySerializer(serializers.ModelSerializer):
    wide = serializers.DecimalField(max_digits=30, decimal_places=10, required=False)
    amount = Fs11dPlainDecimal(max_digits=6, decimal_places=2, required=False)

    class Meta:
        model = RevNumTally
        fields = ["id", "amount", "wide"]


class Fs11dPriceInput(serializers.Serializer):
    wide = serializers.DecimalField(max_digits=30, decimal_places=10)


@fs11d_site.register
class Fs11dTallyResource(Resource):
    model = RevNumTally
    name = "tallies"
    serializer_class = Fs11dTallySerializer
    permissions = FS11D_PUBLIC

    @action(permissions=P.allow_public(), input=Fs11dPriceInput)
    def price(self, request, instance, data):
        instance.wide = data["wide"]
        instance.save(update_fields=["wide"])
        return {"wide": str(data["wide"])}


@pytest.fixture
def fs11d_api(settings):
    with site_mounted(settings, "fs11d", fs11d_site):
        yield client_for()


def _fs11d_post(api, body: str):
    return api.post("/fs11d/tallies/", body, content_type="application/json")


# -- a project's own DecimalField reads a JSON number as written ------------------------------


def test_fs11d_a_declared_decimal_field_keeps_every_digit_of_a_json_number(fs11d_api):
    """DRF's ``DecimalField`` read ``str()`` of the number's float: ``12345678901234567.891``
    was ``12345678901234568``, stored so, where the generated field keeps every digit."""
    r = _fs11d_post(fs11d_api, '{"wide": 12345678901234567.891, "amount": 1.10}')
    assert r.status_code == 201, r.content
    assert r.json()["data"]["wide"] == "12345678901234567.8910000000"
    assert r.json()["data"]["amount"] == "1.10"
    if connection.vendor != "sqlite":  # SQLite holds 15 digits of a decimal (decisions.md)
        assert RevNumTally.objects.get().wide == Decimal("12345678901234567.891")


@pytest.mark.parametrize(
    "number, message",
    [
        # the float 0.1 is this number: read as "0.1" it was taken, its text has 21 places
        ("0.100000000000000005551", "no more than 10 decimal places"),
        ("1e-400", "no more than 30 digits in total"),
        ("1.005", "no more than 2 decimal places"),
    ],
)
def test_fs11d_a_declared_decimal_field_refuses_a_json_number_as_its_string(
    fs11d_api, number, message
):
    field = "amount" if number == "1.005" else "wide"
    for spelled in (number, f'"{number}"'):
        r = _fs11d_post(fs11d_api, f'{{"{field}": {spelled}}}')
        details = assert_error(r, 400, "VALIDATION_ERROR")["details"]
        assert list(details) == [field], spelled
        assert message in details[field][0], spelled
    assert not RevNumTally.objects.exists()


def test_fs11d_an_action_inputs_decimal_field_reads_a_json_number_as_written(fs11d_api):
    row = RevNumTally.objects.create()
    r = fs11d_api.post(
        f"/fs11d/tallies/{row.pk}/action/",
        '{"action": "price", "wide": 12345678901234567.891}',
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["data"]["wide"] == "12345678901234567.8910000000"
    r = fs11d_api.post(
        f"/fs11d/tallies/{row.pk}/action/",
        '{"action": "price", "wide": 0.1000000000000000055511151231257827}',
        content_type="application/json",
    )
    assert list(assert_error(r, 400, "VALIDATION_ERROR")["details"]) == ["wide"]


# -- a time range's bounds compare as shown -------------------------------------------------

fs11d_needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's range types and infinity"
)
FS11D_MEMBERS = {key: P.require_org_membership() for key in ("list", "get")}


@fs11d_site.register
class Fs11dSpecimenResource(Resource):
    model = Specimen
    name = "specimens"
    fields = ["id", "name", "window"]
    filter_fields = {"window": ["eq", "gt", "gte", "lt", "lte"]}
    sort_fields = ["name", "window"]
    presets = [presets.MultiTenant()]
    permissions = FS11D_MEMBERS


FS11D_WINDOWS = {
    "ninf": "(-infinity,2020-01-01)",  # shown {"lower": null, "upper": 2020}
    "nopen": "(,2025-01-01)",
    "inf": "[2020-01-01,infinity)",  # shown {"lower": 2020, "upper": null}
    "open": "[2020-01-01,)",
    "bounded": "[2020-01-01,2021-01-01)",
    "none": None,
}


def _fs11d_windows(org):
    for name, text in FS11D_WINDOWS.items():
        row = Specimen.objects.create(organization=org, name=name)
        with connection.cursor() as cursor:
            cursor.execute(
                'UPDATE testapp_specimen SET "window" = %s::tstzrange WHERE id = %s',
                [text, row.pk],
            )


@fs11d_needs_postgres
@pytest.mark.parametrize(
    "param, value, names",
    [
        # held from -infinity, PostgreSQL put "ninf" above every range unbounded below
        ("window[lt]", {"upper": "2030-01-01T00:00:00Z"}, ["ninf", "nopen"]),
        ("window[lte]", {"upper": "2020-01-01T00:00:00Z"}, ["ninf"]),
        ("window[gt]", {"upper": "2021-01-01T00:00:00Z"}, ["bounded", "inf", "nopen", "open"]),
        # held to infinity, PostgreSQL put "inf" below the unbounded value it shows
        ("window[gte]", {"lower": "2020-01-01T00:00:00Z"}, ["inf", "open"]),
        ("window[lt]", {"lower": "2020-01-01T00:00:00Z"}, ["bounded", "ninf", "nopen"]),
        (
            "window[gt]",
            {"lower": "2020-01-01T00:00:00Z", "upper": "2021-01-01T00:00:00Z"},
            ["inf", "open"],
        ),
        (
            "window[lte]",
            {"lower": "2020-01-01T00:00:00Z", "upper": "2030-01-01T00:00:00Z"},
            ["bounded", "ninf", "nopen"],
        ),
        # equality was already as shown (rev-fixes56)
        ("window", {"lower": "2020-01-01T00:00:00Z"}, ["inf", "open"]),
    ],
)
def test_fs11d_a_time_ranges_bounds_compare_as_the_range_shows(settings, param, value, names):
    """A row shown as ``{"lower": x, "upper": null}`` is compared as that value, whether
    PostgreSQL holds its upper side unbounded or as ``infinity``; another tenant's rows
    (the same windows) are never listed."""
    org = OrganizationFactory()
    _fs11d_windows(org)
    _fs11d_windows(OrganizationFactory())
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    with site_mounted(settings, "fs11d", fs11d_site):
        r = api.get("/fs11d/specimens/", {param: json.dumps(value), "limit": 100})
    assert r.status_code == 200, r.content
    assert sorted(row["name"] for row in r.json()["docs"]) == names


@fs11d_needs_postgres
@pytest.mark.parametrize("sort", ["window", "-window"])
def test_fs11d_a_sort_by_a_time_range_orders_it_as_shown_and_walks_each_row_once(settings, sort):
    """In PostgreSQL's order of the held values "ninf" (shown unbounded below, up to 2020)
    came after "nopen" (unbounded below, up to 2025): a list sorted by the range disagreed
    with the ranges it showed. Rows shown alike ("inf", "open") tie, broken by id; the
    keyset walk pages every row once in that order."""
    org = OrganizationFactory()
    _fs11d_windows(org)
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    # a tie is broken by id ascending both ways; NULL last both ways
    if sort == "window":
        expected = ["ninf", "nopen", "bounded", "inf", "open", "none"]
    else:
        expected = ["inf", "open", "bounded", "nopen", "ninf", "none"]
    with site_mounted(settings, "fs11d", fs11d_site):
        every = api.get("/fs11d/specimens/", {"sort": sort, "limit": 100})
        assert [row["name"] for row in every.json()["docs"]] == expected
        names, cursor = [], ""
        for _ in range(10):
            r = api.get("/fs11d/specimens/", {"sort": sort, "limit": 1, "after": cursor})
            assert r.status_code == 200, r.content
            names += [row["name"] for row in r.json()["docs"]]
            cursor = r.json()["next"]
            if not cursor:
                break
    assert names == expected


# -- a plain date or time stored as infinity ---------------------------------------------------


@fs11d_site.register
class Fs11dPagedRowResource(Resource):
    model = PagedRow
    name = "paged-rows"
    fields = ["id", "label", "day", "at"]
    filter_fields = {"label": ["eq"]}
    sort_fields = ["at"]
    permissions = FS11D_PUBLIC


@fs11d_site.register
class Fs11dDaysOnlyResource(Fs11dPagedRowResource):
    name = "days-only"
    fields = ["id", "label", "day"]


def _fs11d_store(row, column, text):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE testapp_pagedrow SET {column} = %s WHERE id = %s", [text, row.pk])


@fs11d_needs_postgres
@pytest.mark.parametrize(
    "column, text", [("at", "infinity"), ("at", "-infinity"), ("day", "infinity")]
)
def test_fs11d_a_date_or_time_stored_as_infinity_is_a_500_naming_the_field(fs11d_api, column, text):
    """psycopg loads no ``infinity`` into a ``date`` or ``datetime`` (Django fails on it
    too): the list and the get of such a row were a 500 saying nothing of where. The 500
    names the field (and not the other's, which holds a date); a list not reading the row
    answers, and so does a get of another row."""
    fs11d_api.raise_request_exception = False
    bad, good = PagedRow.objects.create(label="bad"), PagedRow.objects.create(label="good")
    _fs11d_store(bad, column, text)
    PagedRow.objects.filter(pk=bad.pk).update(**{"day" if column == "at" else "at": None})
    for url in ("/fs11d/paged-rows/", f"/fs11d/paged-rows/{bad.pk}/"):
        for params in ({}, {"select": "label"}):
            r = fs11d_api.get(url, params)
            body = assert_error(r, 500, "INTERNAL_ERROR")
            assert body["details"] == {column: [INFINITE_VALUE]}, (url, params)
    # a write of the row reads it first: the same answer, nothing written
    for r in (
        fs11d_api.patch(f"/fs11d/paged-rows/{bad.pk}/", {"label": "x"}, format="json"),
        fs11d_api.delete(f"/fs11d/paged-rows/{bad.pk}/"),
    ):
        assert assert_error(r, 500, "INTERNAL_ERROR")["details"] == {column: [INFINITE_VALUE]}
    assert PagedRow.objects.filter(pk=bad.pk, label="bad").exists()
    r = fs11d_api.get("/fs11d/paged-rows/", {"label": "good"})
    assert r.status_code == 200 and [row["label"] for row in r.json()["docs"]] == ["good"]
    assert fs11d_api.get(f"/fs11d/paged-rows/{good.pk}/").status_code == 200


@fs11d_needs_postgres
def test_fs11d_a_stored_infinity_in_a_field_the_caller_cannot_read_is_not_named(fs11d_api):
    fs11d_api.raise_request_exception = False
    row = PagedRow.objects.create(label="bad")
    _fs11d_store(row, "at", "infinity")
    body = assert_error(fs11d_api.get(f"/fs11d/days-only/{row.pk}/"), 500, "INTERNAL_ERROR")
    assert "details" not in body or not body["details"]


# -- 100 and 100.0 are two idempotency bodies ----------------------------------------------


@fs11d_site.register
class Fs11dKeyedRowResource(Fs11dPagedRowResource):
    name = "keyed-rows"
    idempotent = True


def test_fs11d_100_and_100_0_are_two_bodies_since_a_text_field_stores_them_apart(fs11d_api):
    """Kept two fingerprints (decisions.md, fix-seen11d): a decimal, float or integer field
    reads both alike, but a text field reads ``str()`` of each (DRF's ``CharField``), so
    they write two rows; replaying the first for the second would answer a row the second
    never asked for."""
    rows = []
    for number in ("100", "100.0"):
        r = fs11d_api.post(
            "/fs11d/keyed-rows/", f'{{"label": {number}}}', content_type="application/json"
        )
        assert r.status_code == 201, r.content
        rows.append(r.json()["data"]["label"])
    assert rows == ["100", "100.0"]
    assert sorted(PagedRow.objects.values_list("label", flat=True)) == ["100", "100.0"]
    first = fs11d_api.post(
        "/fs11d/keyed-rows/",
        '{"label": 100}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="fs11d-hundred",
    )
    assert first.status_code == 201, first.content
    again = fs11d_api.post(
        "/fs11d/keyed-rows/",
        '{"label": 100.0}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="fs11d-hundred",
    )
    assert_error(again, 422, "IDEMPOTENCY_KEY_REUSED")
    assert PagedRow.objects.count() == 3
