"""rev-fixes56: review of fix-seen10c, fix-seen10b and rev-nulls."""

from __future__ import annotations

import json

import pytest

from django_arc import Resource, ResourceSite, presets
from tests.factories import OrganizationFactory
from tests.helpers import site_mounted
from tests.test_fix_seen10b import (
    FS10B_MEMBERS,
    _fs10b_member,
    _fs10b_store_window,
    _fs10b_window_is,
    fs10b_needs_postgres,
    fs10b_site,
)
from tests.testapp.models import Specimen

pytestmark = pytest.mark.django_db

rf56_site = ResourceSite(name="rev-fixes56")


@rf56_site.register
class Rf56WindowResource(Resource):
    model = Specimen
    name = "windows"
    fields = ["id", "organization", "name", "window"]
    filter_fields = {"window": ["eq", "ne", "in", "nin"]}
    presets = [presets.MultiTenant()]
    permissions = FS10B_MEMBERS


@pytest.fixture
def rf56_windows_api(settings):
    """:class:`Rf56WindowResource` under ``/rf56/``, and a member of one organization."""
    org = OrganizationFactory()
    with site_mounted(settings, "rf56", rf56_site):
        yield org, _fs10b_member(org)


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


@fs10b_needs_postgres
@pytest.mark.parametrize(
    "stored",
    [
        "[2020-01-01,infinity)",
        "[2020-01-01,infinity]",
        "(-infinity,2020-01-01]",
        "[-infinity,2020-01-01]",
        "[-infinity,infinity]",
        "(-infinity,infinity)",
        "(,infinity)",
    ],
)
def test_rf56_a_range_with_an_infinite_bound_is_found_by_the_value_it_shows(
    rf56_windows_api, stored
):
    """A row whose range PostgreSQL holds with an ``infinity`` bound renders it unbounded,
    but ``?window=`` (and ``[in]``) with that very value compared with the unbounded range,
    which PostgreSQL holds apart: the row was not found by what it shows, and ``[ne]``
    listed it. The value shown finds it, in the caller's tenant only."""
    org, api = rf56_windows_api
    row = Specimen.objects.create(organization=org, name="n")
    _fs10b_store_window(row, stored)
    Specimen.objects.create(organization=org, name="bounded", window=None)
    theirs = Specimen.objects.create(organization=OrganizationFactory(), name="theirs")
    _fs10b_store_window(theirs, stored)
    shown = api.get(f"/rf56/windows/{row.pk}/").json()["data"]["window"]
    value = json.dumps(shown)

    def names(query):
        r = api.get("/rf56/windows/", query)
        assert r.status_code == 200, r.content
        return sorted(d["name"] for d in r.json()["docs"])

    assert names({"window": value}) == ["n"]
    assert names({"window[in]": f"[{value}]"}) == ["n"]
    assert names({"window[ne]": value}) == ["bounded"]
    assert names({"window[nin]": f"[{value}]"}) == ["bounded"]
