"""rev-fixes51's review of rev-relations and rev-pgfields: range values PostgreSQL stores
otherwise than they were sent, range ``bounds`` of the wrong JSON type, and the
self-cascade check of a hard delete."""

from __future__ import annotations

import json
import sqlite3

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import NumericRange

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.outbox.models import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.test_rev_pgfields import (  # noqa: F401 - the fixture
    _rev_pgfields_rows,
    rev_pgfields_api,
    rev_pgfields_needs_postgres,
)
from tests.test_rev_relations import rr_site
from tests.testapp.models import Folder, Rf51Sheet, Rf51Slot, Specimen

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


rf51_site = ResourceSite(name="rev-fixes51")


@rf51_site.register
class Rf51SheetResource(Resource):
    """Every member reads the tenant's sheets; only a sheet's owner deletes it, for good."""

    model = Rf51Sheet
    name = "sheets"
    fields = ["id", "organization", "owner", "name", "slot"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.Bulk()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }


def _rf51_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api, user


def test_rf51_a_delete_cascading_into_own_rows_through_another_model_is_refused(settings):
    """A sheet sits in a slot of another member's sheet: deleting that sheet cascades into
    the slot and from it into the sheet, which its own delete refuses (403). The check read
    only relations from the model to itself, so the cascade went unjudged (200, the other
    member's sheet gone). Now 409 as a protected row, single and bulk, nothing deleted."""
    org = OrganizationFactory()
    api, me = _rf51_member(org)
    _, them = _rf51_member(org)
    mine = Rf51Sheet.objects.create(organization=org, owner=me, name="mine")
    slot = Rf51Slot.objects.create(sheet=mine)
    theirs = Rf51Sheet.objects.create(organization=org, owner=them, name="theirs", slot=slot)
    with site_mounted(settings, "rf51", rf51_site):
        assert_error(api.delete(f"/rf51/sheets/{theirs.pk}/"), 403, "OWNERSHIP_DENIED")
        for r in (
            api.delete(f"/rf51/sheets/{mine.pk}/"),
            api.delete("/rf51/sheets/bulk/", {"ids": [mine.pk]}, format="json"),
        ):
            body = assert_error(r, 409, "CONFLICT")
            assert body["error"] == "Cannot delete: other records still refer to this one"
        assert Rf51Sheet.objects.count() == 2
        assert Rf51Slot.objects.count() == 1
        # their sheet moved out of the slot: the caller's sheet goes with its slot
        Rf51Sheet.objects.filter(pk=theirs.pk).update(slot=None)
        assert api.delete(f"/rf51/sheets/{mine.pk}/").status_code == 200
    assert list(Rf51Sheet.objects.values_list("pk", flat=True)) == [theirs.pk]
    assert not Rf51Slot.objects.exists()


rf51_pg_site = ResourceSite(name="rev-fixes51-pg")


@rf51_pg_site.register
class Rf51SpecimenResource(Resource):
    model = Specimen
    name = "specimens"
    fields = ["id", "organization", "name", "span"]
    presets = [presets.MultiTenant(), presets.Audited()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }
    action_permissions = P.require_org_membership()

    @action()
    def widen(self, request, instance, data):
        instance.span = (1, 5)  # a pair, as Django takes a range
        instance.save()
        return instance


@rev_pgfields_needs_postgres
def test_rf51_a_range_a_project_assigned_as_a_pair_is_rendered(settings):
    """An action assigning ``(1, 5)`` to a range field (Django stores it as ``[1,5)``) saved
    the row, then its answer was a 500 (``range_json`` read ``isempty`` of a tuple)."""
    org = OrganizationFactory()
    api, _ = _rf51_member(org)
    row = Specimen.objects.create(organization=org, name="x")
    with site_mounted(settings, "rf51pg", rf51_pg_site):
        r = api.post(f"/rf51pg/specimens/{row.pk}/action/", {"action": "widen"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["span"] == {"lower": 1, "upper": 5, "bounds": "[)"}
    assert Specimen.objects.get().span == NumericRange(1, 5, "[)")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's bound on query variables")
def test_rf51_a_cascade_reaching_more_rows_than_a_query_may_name_is_judged(settings):
    """On a SQLite built with the historical bound of 999 variables per statement (before
    3.32's 32766; Django's own delete batches to it), the self-cascade check named every
    reached row in one ``pk__in``: deleting a folder holding 1000 of the caller's folders
    was "too many SQL variables", a 500 with nothing deleted. Now judged in batches."""
    org = OrganizationFactory()
    api, me = _rf51_member(org)
    top = Folder.objects.create(organization=org, owner=me, name="top")
    Folder.objects.bulk_create(
        [Folder(organization=org, owner=me, name=f"f{i}", parent=top) for i in range(1000)]
    )
    connection.ensure_connection()
    raw = connection.connection
    before = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    try:
        with site_mounted(settings, "rr", rr_site):
            r = api.delete(f"/rr/hard-folders/{top.pk}/")
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)
    assert r.status_code == 200, r.content
    assert not Folder.objects.exists()
