"""rev-fixes51's review of rev-relations and rev-pgfields: range values PostgreSQL stores
otherwise than they were sent, range ``bounds`` of the wrong JSON type, and the
self-cascade check of a hard delete."""

from __future__ import annotations

import json

import pytest
from django.db.backends.postgresql.psycopg_any import NumericRange

from django_arc.outbox.models import OutboxEvent
from tests.helpers import assert_error
from tests.test_rev_pgfields import (  # noqa: F401 - the fixture
    _rev_pgfields_rows,
    rev_pgfields_api,
    rev_pgfields_needs_postgres,
)
from tests.testapp.models import Specimen

pytestmark = pytest.mark.django_db


@rev_pgfields_needs_postgres
@pytest.mark.parametrize("bounds", [["[)"], {}, {"[": ")"}])
def test_rf51_range_bounds_that_are_no_string_are_a_400_naming_the_field(
    rev_pgfields_api,  # noqa: F811
    bounds,
):
    org, api = rev_pgfields_api
    _rev_pgfields_rows(org)
    r = api.get("/pg/specimens/", {"span": f'{{"lower":1,"bounds":{json.dumps(bounds)}}}'})
    assert assert_error(r, 400, "INVALID_QUERY")["details"] == {
        "span": "bounds must be one of (), (], [), []"
    }
    r = api.post("/pg/specimens/", {"name": "n", "span": {"bounds": bounds}}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "span": ["Bounds must be one of (), (], [), []."]
    }
    assert Specimen.objects.count() == 3


@rev_pgfields_needs_postgres
@pytest.mark.parametrize(
    "sent, stored",
    [
        ({"lower": 1, "upper": 5, "bounds": "[]"}, {"lower": 1, "upper": 6, "bounds": "[)"}),
        ({"lower": 1, "upper": 5, "bounds": "()"}, {"lower": 2, "upper": 5, "bounds": "[)"}),
        ({"lower": 5, "upper": 5, "bounds": "()"}, {"empty": True}),
        ({"lower": 5, "upper": 5, "bounds": "[)"}, {"empty": True}),
        ({"lower": 4, "upper": 5, "bounds": "()"}, {"empty": True}),
        ({"lower": None, "upper": 5, "bounds": "[]"}, {"lower": None, "upper": 6, "bounds": "()"}),
    ],
)
def test_rf51_a_written_range_is_answered_and_sent_as_postgresql_stores_it(
    rev_pgfields_api,  # noqa: F811
    sent,
    stored,
):
    org, api = rev_pgfields_api
    r = api.post("/pg/specimens/", {"name": "n", "span": sent}, format="json")
    assert r.status_code == 201, r.content
    row = Specimen.objects.get()
    assert api.get(f"/pg/specimens/{row.pk}/").json()["data"]["span"] == stored
    assert r.json()["data"]["span"] == stored
    created = OutboxEvent.objects.get(type="specimens.created").payload
    assert created["data"]["span"] == stored
    # sent again as read, nothing changed: no event says it did
    r = api.patch(f"/pg/specimens/{row.pk}/", {"span": stored}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["span"] == stored
    assert OutboxEvent.objects.get(type="specimens.updated").payload["changed"] == []


@rev_pgfields_needs_postgres
def test_rf51_a_range_at_the_columns_last_integer_is_a_400_not_postgresqls_error(
    rev_pgfields_api,  # noqa: F811
):
    org, api = rev_pgfields_api
    top = 2147483647
    r = api.post(
        "/pg/specimens/",
        {"name": "n", "span": {"lower": 1, "upper": top, "bounds": "[]"}},
        format="json",
    )
    assert list(assert_error(r, 400, "VALIDATION_ERROR")["details"]) == ["span"]
    r = api.get("/pg/specimens/", {"span": f'{{"lower":{top},"bounds":"()"}}'})
    assert list(assert_error(r, 400, "INVALID_QUERY")["details"]) == ["span"]
    # the last integer is a bound a range may hold, exclusive
    r = api.post(
        "/pg/specimens/",
        {"name": "n", "span": {"lower": 1, "upper": top, "bounds": "[)"}},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert Specimen.objects.get().span == NumericRange(1, top, "[)")
