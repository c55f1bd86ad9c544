"""rev-fixes41: review of rev-signals' merge (bulk writes row by row where the model's own
code runs, the forced-values check, audit rows sent one by one) and rev-fixes40's
follow-up (the renamed format parameter, the event's actor)."""

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models.signals import pre_save
from django.test import override_settings

from django_arc.outbox.models import OutboxEvent
from tests.factories import AuthorFactory, BookFactory, UserFactory
from tests.helpers import client_for
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


@pytest.fixture
def rf41_api():
    return client_for(UserFactory())


def test_rf41_a_bulk_filter_named_as_the_format_parameter_is_refused_not_dropped(rf41_api):
    """1ede35d made the query language skip DRF's ``URL_FORMAT_OVERRIDE`` parameter, by
    whatever name the project gives it. A bulk update's ``filter`` goes through the same
    parser: with the override named after a filter field (``title``), ``{"title": "a1",
    "pages[gte]": 1}`` dropped the title and updated every row of a page or more. A key the
    query string keeps for itself is refused now, naming it, as an unknown key is; its
    operator spelling (``title[eq]``) filters."""
    one, two = BookFactory(title="a1", pages=5), BookFactory(title="a2", pages=5)
    renamed = {**django_settings.REST_FRAMEWORK, "URL_FORMAT_OVERRIDE": "title"}
    body = {"filter": {"title": "a1", "pages[gte]": 1}, "data": {"pages": 9}}
    with override_settings(REST_FRAMEWORK=renamed):
        r = rf41_api.patch("/api/bulk-books/bulk/", body, format="json")
        assert r.status_code == 400, r.content
        assert r.json()["code"] == "VALIDATION_ERROR"
        assert list(r.json()["details"]["filter"]) == ["title"]
        assert sorted(Book.objects.values_list("pages", flat=True)) == [5, 5]
        assert not OutboxEvent.objects.exists()
        body["filter"] = {"title[eq]": "a1", "pages[gte]": 1}
        r = rf41_api.patch("/api/bulk-books/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["ids"] == [one.pk]
    assert Book.objects.get(pk=one.pk).pages == 9
    assert Book.objects.get(pk=two.pk).pages == 5


@pytest.fixture
def rf41_refusing_receiver():
    """A project's ``pre_save`` receiver refusing a book titled "bad" with Django's
    ``ValidationError`` naming the field (which the single-row routes answer as the 400
    naming it)."""

    def rf41_refuse(sender, instance, **kwargs):
        if instance.title == "bad":
            raise DjangoValidationError({"title": "Refused by the project's receiver."})

    pre_save.connect(rf41_refuse, sender=Book, weak=False, dispatch_uid="rf41-refuse")
    try:
        yield
    finally:
        pre_save.disconnect(sender=Book, dispatch_uid="rf41-refuse")


def test_rf41_a_receivers_refusal_of_a_bulk_item_names_the_item(rf41_api, rf41_refusing_receiver):
    """Bulk writes of a model with a project's receiver save row by row (rev-signals), and
    a ``ValidationError`` the receiver raised during an item's save was answered with the
    field alone (``{"title": [...]}``), naming no item, where every other per-item error of
    a bulk write is nested under its index (SPEC: "nested for bulk items"). It is the
    item's error now, for creates and updates; nothing is written."""
    author = AuthorFactory()
    refused = {"items": {"1": {"title": ["Refused by the project's receiver."]}}}
    items = [
        {"title": title, "isbn": f"i{i}", "author": author.pk}
        for i, title in enumerate(["ok", "bad", "ok too"])
    ]
    r = rf41_api.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert r.json()["details"] == refused
    assert not Book.objects.exists()
    one, two = BookFactory(title="b1"), BookFactory(title="b2")
    items = [{"id": one.pk, "title": "fine"}, {"id": two.pk, "title": "bad"}]
    r = rf41_api.patch("/api/bulk-books/bulk/", {"items": items}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == refused
    assert sorted(Book.objects.values_list("title", flat=True)) == ["b1", "b2"]
    assert not OutboxEvent.objects.exists()


def test_rf41_a_delete_overrides_refusal_of_a_bulk_row_names_the_row(rf41_api, monkeypatch):
    """A model's ``delete()`` override deletes each row of a bulk delete (rev-signals);
    one refusing a row with Django's ``ValidationError`` (a published book kept) was the 400
    of the whole request naming no row. It is that row's error under ``ids`` now, and
    nothing is deleted."""
    keep, published = BookFactory(title="draft"), BookFactory(title="published")
    original = Book.delete

    def rf41_delete(self, *args, **kwargs):
        if self.title == "published":
            raise DjangoValidationError("A published book is kept.")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Book, "delete", rf41_delete)
    r = rf41_api.delete("/api/bulk-books/bulk/", {"ids": [keep.pk, published.pk]}, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == ["ids"]
    assert list(r.json()["details"]["ids"]) == ["1"]
    assert "A published book is kept." in str(r.json()["details"]["ids"]["1"])
    assert Book.objects.count() == 2
    assert not OutboxEvent.objects.exists()
