"""``SoftDelete`` when another request got there first (found by hand mutants of
``django_arc/presets/softdelete.py`` that the suite let through): the stamp is one
conditional ``UPDATE``, and a row another request deleted (or restored) between this one's
read and its write is answered as it would be read now, a 404, with no second stamp and no
event. The other request is played inside this one, after the row was read (its write is
rolled back with the refused request's transaction)."""

import pytest
from django.utils import timezone

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from tests.factories import UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

site = ResourceSite(name="soft-races")
EARLIER = timezone.now() - timezone.timedelta(days=1)


@site.register
class RacedArticleResource(Resource):
    model = Article
    name = "raced-articles"
    fields = ["id", "slug", "title", "deleted_at"]
    presets = [presets.SoftDelete()]
    permissions = {"get": P.allow_public(), "delete": P.require_auth(), "update": P.require_auth()}

    def before_delete(self, request, instance):
        if request.headers.get("X-Race"):  # another request soft-deletes it meanwhile
            Article.objects.filter(pk=instance.pk).update(deleted_at=EARLIER)


def test_a_row_soft_deleted_meanwhile_is_404_with_no_second_stamp_and_no_event(settings):
    article = Article.objects.create(slug="a", title="A")
    user = client_for(UserFactory())
    with site_mounted(settings, "soft-races", site):
        r = user.delete(f"/soft-races/raced-articles/{article.pk}/", HTTP_X_RACE="1")
    assert_error(r, 404, "NOT_FOUND")
    # the refusal rolls the request's transaction back, the simulated write with it
    assert Article.objects.get(pk=article.pk).deleted_at is None
    assert not OutboxEvent.objects.filter(type="raced-articles.deleted").exists()


def test_a_row_restored_meanwhile_is_404_with_no_event(settings, monkeypatch):
    """A restore reads a deleted row; another request restores it first: 404, no
    ``restored`` event, the row as the other request left it."""
    article = Article.objects.create(slug="a", title="A", deleted_at=EARLIER)
    user = client_for(UserFactory())
    real = presets.SoftDelete._stamp

    def restored_first(self, instance, *, deleted, value):
        Article.objects.filter(pk=instance.pk).update(deleted_at=None)
        return real(self, instance, deleted=deleted, value=value)

    monkeypatch.setattr(presets.SoftDelete, "_stamp", restored_first)
    with site_mounted(settings, "soft-races", site):
        r = user.post(f"/soft-races/raced-articles/{article.pk}/restore/")
    assert_error(r, 404, "NOT_FOUND")
    assert Article.objects.get(pk=article.pk).deleted_at == EARLIER  # rolled back with it
    assert not OutboxEvent.objects.filter(type="raced-articles.restored").exists()


@site.register
class RacedBulkArticleResource(Resource):
    model = Article
    name = "raced-bulk-articles"
    fields = ["id", "slug", "title", "deleted_at"]
    presets = [presets.SoftDelete(), presets.Bulk()]
    permissions = {"list": P.allow_public(), "delete": P.require_auth()}


def test_a_bulk_soft_delete_of_rows_one_of_which_went_meanwhile_is_refused(settings, monkeypatch):
    """A bulk soft delete stamps its rows in one conditional ``UPDATE``: one of them
    soft-deleted by another request after this one read them makes the whole request the
    400 naming it, with no stamp on the others and no event."""
    first = Article.objects.create(slug="a", title="A")
    second = Article.objects.create(slug="b", title="B")
    real = presets.SoftDelete.perform_delete_many

    def second_went_first(self, view, instances):
        Article.objects.filter(pk=second.pk).update(deleted_at=EARLIER)
        return real(self, view, instances)

    monkeypatch.setattr(presets.SoftDelete, "perform_delete_many", second_went_first)
    user = client_for(UserFactory())
    ids = [first.pk, second.pk]
    with site_mounted(settings, "soft-races", site):
        r = user.delete("/soft-races/raced-bulk-articles/bulk/", {"ids": ids}, format="json")
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["details"] == {"ids": {"1": {"id": ["Not found."]}}}
    assert Article.objects.get(pk=first.pk).deleted_at is None
    assert not OutboxEvent.objects.filter(type="raced-bulk-articles.deleted").exists()
