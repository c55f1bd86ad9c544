"""rev-fixes56: review of fix-seen10c, fix-seen10b and rev-nulls."""

from __future__ import annotations

import pytest

from tests.factories import OrganizationFactory
from tests.helpers import site_mounted
from tests.test_fix_seen10b import (
    _fs10b_member,
    _fs10b_store_window,
    _fs10b_window_is,
    fs10b_needs_postgres,
    fs10b_site,
)
from tests.testapp.models import Specimen

pytestmark = pytest.mark.django_db


@pytest.fixture
def rf56_specimens_api(settings):
    """fix-seen10b's specimens mounted under ``/fs10b/``, and a member of one organization."""
    org = OrganizationFactory()
    with site_mounted(settings, "fs10b", fs10b_site):
        yield org, _fs10b_member(org)


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "stored",
    ["[2020-01-01,infinity)", "(-infinity,2020-01-01]", "[-infinity,infinity]"],
)
@pytest.mark.parametrize("verb", ["put", "patch"])
def test_rf56_a_range_with_an_infinite_bound_sent_back_as_shown_is_kept(
    rf56_specimens_api, stored, verb
):
    """fix-seen10b keeps PostgreSQL's ``infinity`` when a row is saved for another field,
    but a client sending the row back as it read it (GET, change the name, PUT the whole
    body; or a PATCH naming the range unchanged) rewrote the bound as unbounded: a value
    the API showed unchanged was changed in the database. The range as shown is the row's
    own value, kept; another range is written as sent."""
    org, api = rf56_specimens_api
    row = Specimen.objects.create(organization=org, name="n")
    Specimen.objects.create(organization=OrganizationFactory(), name="other")
    _fs10b_store_window(row, stored)
    shown = api.get(f"/fs10b/specimens/{row.pk}/").json()["data"]
    body = (
        {k: v for k, v in shown.items() if k not in ("id", "organization")} | {"name": "m"}
        if verb == "put"
        else {"window": shown["window"]}
    )
    r = getattr(api, verb)(f"/fs10b/specimens/{row.pk}/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["window"] == shown["window"]
    assert _fs10b_window_is(row, stored)
    # a range other than the one shown is written as sent
    other = {"lower": "2020-01-01T00:00:00Z", "upper": "2021-01-01T00:00:00Z", "bounds": "[)"}
    r = api.patch(f"/fs10b/specimens/{row.pk}/", {"window": other}, format="json")
    assert r.status_code == 200, r.content
    assert _fs10b_window_is(row, '["2020-01-01 00:00:00+00","2021-01-01 00:00:00+00")')
