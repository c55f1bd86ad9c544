"""rev-fixes60: a review of fix-seen11a (a plain action input's generic pair) and
fix-seen11b (empty structured ``[in]``, raising preset checks, ``write_values`` per bulk
item)."""

from __future__ import annotations

import itertools

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from django_arc.presets.base import Preset
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

rf60_site = ResourceSite(name="rev-fixes60")
_RF60_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}


@pytest.fixture
def rf60_mounted(settings):
    with site_mounted(settings, "rf60", rf60_site):
        yield


# -- a preset forcing a value of its moment on a bulk update ---------------------------------


class _Rf60Stamping(Preset):
    """Forces ``views`` to a new number at every call, as a preset stamping the moment (a
    clock, a sequence, a batch id) would: the row holds what it was written with."""

    name = "rf60-stamping"
    needs_transaction = False

    def __init__(self):
        self.counter = itertools.count(1)
        self.given: list[int] = []

    def write_values(self, view, instance=None):
        value = next(self.counter)
        self.given.append(value)
        return {"views": value}


_rf60_stamping = _Rf60Stamping()


@rf60_site.register
class _Rf60StampedArticles(Resource):
    """Saved in batches (``bulk_update``): DRF's own ``ModelSerializer`` saving."""

    model = Article
    name = "rf60-articles"
    fields = ["id", "slug", "title", "views"]
    read_only_fields = ["views"]
    filter_fields = {"title": ["eq"]}
    presets = [presets.Bulk(max_items=10), presets.Audited(), _rf60_stamping]
    permissions = _RF60_PUBLIC


class _Rf60OwnUpdateSerializer(serializers.ModelSerializer):
    """A serializer saving rows its own way: the bulk update saves row by row."""

    class Meta:
        model = Article
        fields = ["id", "slug", "title", "views"]
        read_only_fields = ["views"]

    def update(self, instance, validated_data):
        return super().update(instance, validated_data)


@rf60_site.register
class _Rf60StampedOwnArticles(_Rf60StampedArticles):
    name = "rf60-own-articles"
    serializer_class = _Rf60OwnUpdateSerializer


@pytest.mark.parametrize("name", ["rf60-articles", "rf60-own-articles"])
@pytest.mark.parametrize("shape", ["items", "filter"])
def test_rf60_a_bulk_update_keeps_each_rows_forced_values_as_written(rf60_mounted, name, shape):
    """A bulk update asked the presets' ``write_values`` for each row to write it, then
    again after the write to check the row still held them: a preset forcing a value of
    its moment (here a counter) was judged moved and every bulk update was a 500 (a
    ``ServerFault`` naming item 0), where the ``PATCH`` of one row is 200; each row's values
    were asked twice. Now each row's are asked once, as for a ``PATCH``, and checked as
    written: 200, every row holding the value it was given, one audit entry and one event
    each."""
    rows = [Article.objects.create(slug=f"s{i}", title="t") for i in range(3)]
    api = client_for(None)
    api.raise_request_exception = False
    _rf60_stamping.given.clear()
    if shape == "items":
        body = {"items": [{"id": row.pk, "title": "u"} for row in rows]}
    else:
        body = {"filter": {"title[eq]": "t"}, "data": {"title": "u"}}
    r = api.patch(f"/rf60/{name}/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"updated": 3, "ids": [row.pk for row in rows]}
    stored = list(Article.objects.order_by("pk").values_list("title", "views"))
    assert stored == [("u", value) for value in _rf60_stamping.given]
    assert len(set(_rf60_stamping.given)) == 3
    assert AuditLog.objects.count() == 3
    assert OutboxEvent.objects.filter(type=f"{name}.updated").count() == 3
    # the update of one row, for comparison: asked once, 200
    _rf60_stamping.given.clear()
    one = api.patch(f"/rf60/{name}/{rows[0].pk}/", {"title": "v"}, format="json")
    assert one.status_code == 200, one.content
    assert one.json()["data"]["views"] == _rf60_stamping.given[-1]
    assert len(_rf60_stamping.given) == 1


@pytest.mark.parametrize("name", ["rf60-articles", "rf60-own-articles"])
def test_rf60_a_bulk_create_asks_each_items_forced_values_once(rf60_mounted, name):
    """Decided (fix-seen11b): a bulk create asks ``write_values`` once per item, as the
    create of one row asks it once: a value of its moment differs per item, each row
    holding its own, and the batch answers 201."""
    api = client_for(None)
    api.raise_request_exception = False
    _rf60_stamping.given.clear()
    items = [{"slug": f"c{i}", "title": "c"} for i in range(3)]
    r = api.post(f"/rf60/{name}/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    stored = list(Article.objects.order_by("pk").values_list("views", flat=True))
    assert stored == _rf60_stamping.given
    assert len(set(stored)) == 3
