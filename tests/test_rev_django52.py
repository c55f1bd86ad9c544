"""Django 5.x model features end to end (rev-django52): a ``GeneratedField`` read back after
every write that changes what it is computed from (single, bulk and action answers, their
events), a ``db_default`` field in a unique set (optional, as one outside a set is), and a
check constraint's violation. The models are isolated (their tables made by the test), so
that the Django 4.2 run, which has neither feature, has no migration declaring them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django
import pytest
from django.db import connection, models
from django.db.models.functions import Now
from django.test.utils import isolate_apps
from drf_spectacular.generators import SchemaGenerator

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from tests.helpers import assert_error, client_for, site_mounted

pytestmark = pytest.mark.django_db(transaction=True)

needs_django50 = pytest.mark.skipif(
    django.VERSION < (5, 0), reason="GeneratedField and db_default are Django 5.0's"
)
D52_ROUTES = ("list", "get", "create", "update", "delete")


@contextmanager
def d52_mounted(settings: Any, *resources: type[Resource]) -> Iterator[Any]:
    """``resources`` served under ``/d52/`` with their models' tables made for the test; an
    anonymous API client."""
    site = ResourceSite(name="rev-django52")
    for resource in resources:
        site.register(resource)
    made = [resource.model for resource in resources]
    with connection.schema_editor() as editor:
        for model in made:
            editor.create_model(model)
    try:
        with site_mounted(settings, "d52", site):
            api = client_for()
            api.raise_request_exception = False
            yield api
    finally:
        _all_sites.remove(site)
        with connection.schema_editor() as editor:
            for model in made:
                editor.delete_model(model)


def d52_line_model() -> type[models.Model]:
    """A row with a stored generated column (``total = price * qty``)."""
    with isolate_apps("tests.testapp"):

        class D52Line(models.Model):
            price = models.IntegerField()
            qty = models.IntegerField(default=1)
            total = models.GeneratedField(
                expression=models.F("price") * models.F("qty"),
                output_field=models.IntegerField(),
                db_persist=True,
            )

            class Meta:
                app_label = "testapp"

    return D52Line


def d52_events(kind: str) -> list[dict]:
    return [e.payload for e in OutboxEvent.objects.order_by("pk") if e.type.endswith(kind)]


@needs_django50
def test_a_generated_column_is_read_back_after_every_write(settings):
    """Django's ``save()`` of an existing row and ``bulk_update`` leave a ``GeneratedField``
    as it was read: a PATCH of ``qty`` answered the old ``total``, and its event said
    ``total`` unchanged (``changed: ["qty"]``, ``data.total`` the old value); so did a bulk
    update's events and an action's answer. Every write's answer and event now hold the
    value the database computed, as a GET after it does."""
    line_model = d52_line_model()

    class D52LineResource(Resource):
        model = line_model
        name = "lines"
        fields = ["id", "price", "qty", "total"]
        filter_fields = {"total": ["eq", "gte"], "price": ["eq"]}
        sort_fields = ["total"]
        presets = [presets.Bulk()]
        permissions = {key: P.allow_public() for key in D52_ROUTES}

        @action(permissions=P.allow_public())
        def double(self, request, instance, data):
            instance.qty *= 2
            instance.save()
            return instance

    with d52_mounted(settings, D52LineResource) as api:
        r = api.post("/d52/lines/", {"price": 3, "qty": 2}, format="json")
        assert r.status_code == 201 and r.json()["data"]["total"] == 6, r.content
        pk = r.json()["data"]["id"]
        r = api.patch(f"/d52/lines/{pk}/", {"qty": 4}, format="json")
        assert r.status_code == 200 and r.json()["data"]["total"] == 12, r.content
        updated = d52_events("updated")[-1]
        assert updated["data"]["total"] == 12
        assert updated["changed"] == ["qty", "total"]
        assert updated["previous"] == {"qty": 2, "total": 6}
        r = api.patch("/d52/lines/bulk/", {"items": [{"id": pk, "qty": 5}]}, format="json")
        assert r.status_code == 200, r.content
        updated = d52_events("updated")[-1]
        assert (updated["data"]["total"], updated["changed"]) == (15, ["qty", "total"])
        body = {"filter": {"price": 3}, "data": {"price": 10}}
        assert api.patch("/d52/lines/bulk/", body, format="json").status_code == 200
        assert d52_events("updated")[-1]["data"]["total"] == 50
        r = api.post(f"/d52/lines/{pk}/action/", {"action": "double"}, format="json")
        assert r.status_code == 200 and r.json()["data"]["total"] == 100, r.content
        # what the answers said is what the table holds, and filters and sorts read
        assert api.get(f"/d52/lines/{pk}/").json()["data"]["total"] == 100
        assert api.get("/d52/lines/?total[gte]=100&sort=-total").json()["total"] == 1
        # the database computes it: a body naming it is refused, naming it
        r = api.patch(f"/d52/lines/{pk}/", {"total": 1}, format="json")
        assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {"fields": ["total"]}
        r = api.post("/d52/lines/bulk/", {"items": [{"price": 1, "total": 9}]}, format="json")
        assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"]["fields"] == ["total"]
        assert line_model.objects.get().total == 100
        schema = SchemaGenerator().get_schema(request=None, public=True)
        components = schema["components"]["schemas"]
        readable = [c for c in components.values() if "total" in c.get("properties", {})]
        assert readable and all(c["properties"]["total"].get("readOnly") for c in readable)


@needs_django50
def test_a_field_with_a_database_default_in_a_unique_set_may_be_left_out(settings):
    """DRF makes each field of a unique set required unless ``has_default()``, which knows
    ``default`` only: a ``db_default`` field in a ``UniqueConstraint`` was 400 ``This field
    is required.`` on every create leaving it out (single and bulk), though the database
    fills it in. Left out, a constant default is judged as if sent (a taken one is the
    constraint's 400), and one the database computes is judged by the database alone."""
    with isolate_apps("tests.testapp"):

        class D52Slot(models.Model):
            title = models.CharField(max_length=20)
            label = models.CharField(max_length=20, db_default="new")
            opened = models.DateTimeField(db_default=Now())

            class Meta:
                app_label = "testapp"
                constraints = [
                    models.UniqueConstraint(
                        fields=["title", "label"],
                        name="d52_slot_title_label",
                        violation_error_message="title taken for this label",
                    ),
                    models.UniqueConstraint(fields=["title", "opened"], name="d52_slot_opened"),
                ]

    class D52SlotResource(Resource):
        model = D52Slot
        name = "slots"
        fields = ["id", "title", "label", "opened"]
        presets = [presets.Bulk()]
        permissions = {key: P.allow_public() for key in D52_ROUTES}

    with d52_mounted(settings, D52SlotResource) as api:
        r = api.post("/d52/slots/", {"title": "a"}, format="json")
        assert r.status_code == 201, r.content
        assert r.json()["data"]["label"] == "new" and r.json()["data"]["opened"]
        r = api.post("/d52/slots/", {"title": "a", "label": "old"}, format="json")
        assert r.status_code == 201, r.content
        r = api.post("/d52/slots/", {"title": "a"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "non_field_errors": ["title taken for this label"]
        }
        r = api.post("/d52/slots/bulk/", {"items": [{"title": "b"}]}, format="json")
        assert r.status_code == 201, r.content
        r = api.patch(f"/d52/slots/{D52Slot.objects.get(title='b').pk}/", {"title": "c"})
        assert r.status_code == 200 and r.json()["data"]["label"] == "new", r.content
        assert sorted(D52Slot.objects.values_list("title", "label")) == [
            ("a", "new"),
            ("a", "old"),
            ("c", "new"),
        ]
        schema = SchemaGenerator().get_schema(request=None, public=True)
        requests = [
            c
            for name, c in schema["components"]["schemas"].items()
            if "label" in c.get("properties", {}) and "Request" in name
        ]
        assert requests and all("label" not in c.get("required", ()) for c in requests)


def d52_check(condition: models.Q, name: str, **options: Any) -> models.CheckConstraint:
    # ``condition`` is Django 5.1's name for ``check`` (which 6.0 removes)
    spelled = "condition" if django.VERSION >= (5, 1) else "check"
    return models.CheckConstraint(**{spelled: condition}, name=name, **options)


def test_a_check_constraint_violation_is_a_400_with_its_message(settings):
    """A body the serializer passes and a ``CheckConstraint`` refuses was 409 ``CONFLICT``
    naming nothing (the database's ``IntegrityError``), single create and update alike; it
    is the 400 with the constraint's message, as Django's forms and admin say it, nothing
    written. A bulk write of it stays one 409 for the batch (bulk leaves constraints to the
    database). Django 4.2 and 5.x."""
    message = {"violation_error_message": "price must not be below the floor"}
    with isolate_apps("tests.testapp"):

        class D52Priced(models.Model):
            price = models.IntegerField()
            floor = models.IntegerField(default=0)

            class Meta:
                app_label = "testapp"
                constraints = [
                    d52_check(models.Q(price__gte=models.F("floor")), "d52_floor", **message),
                    d52_check(models.Q(floor__gte=0), "d52_floor_positive"),
                ]

    class D52PricedResource(Resource):
        model = D52Priced
        name = "priced"
        fields = ["id", "price", "floor"]
        presets = [presets.Bulk()]
        permissions = {key: P.allow_public() for key in D52_ROUTES}

    with d52_mounted(settings, D52PricedResource) as api:
        r = api.post("/d52/priced/", {"price": 1, "floor": 5}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "non_field_errors": ["price must not be below the floor"]
        }
        r = api.post("/d52/priced/", {"price": 1, "floor": -1}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "non_field_errors": ["Constraint “d52_floor_positive” is violated."]
        }
        r = api.post("/d52/priced/", {"price": 5, "floor": 5}, format="json")
        assert r.status_code == 201, r.content
        pk = r.json()["data"]["id"]
        r = api.patch(f"/d52/priced/{pk}/", {"price": 4}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "non_field_errors": ["price must not be below the floor"]
        }
        r = api.post("/d52/priced/bulk/", {"items": [{"price": 1, "floor": 5}]}, format="json")
        assert_error(r, 409, "CONFLICT")
        assert list(D52Priced.objects.values_list("price", "floor")) == [(5, 5)]
        assert [e.type for e in OutboxEvent.objects.all()] == ["priced.created"]
