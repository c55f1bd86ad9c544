"""A project's ``get_queryset()`` on a ViewSet serving a resource answers with its own
``Prefetch`` objects first, wherever in the class's MRO it is defined: a mixin listed before
the generated ViewSet (``class V(NarrowMixin, BookResource.as_viewset())``) is DRF's usual
way to share one."""

from __future__ import annotations

import pytest
from django.db.models import Prefetch
from rest_framework import serializers

from django_arc import Resource
from django_arc import permissions as P
from tests.factories import AuthorFactory, BookFactory
from tests.helpers import client_for
from tests.testapp.models import Book, Review


class ReviewBody(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["body"]


class ReviewedBookSerializer(serializers.ModelSerializer):
    reviews = ReviewBody(many=True, read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "author", "reviews"]


class MixinNarrowedBookResource(Resource):
    model = Book
    serializer_class = ReviewedBookSerializer
    name = "mixin-narrowed-books"
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update")}
    # routed by hand for the whole run (as_viewset() at import): never cached, or every test
    # turning the cache on would connect Review's signals
    cache = False

    def after_create(self, request, instance):
        Review.objects.create(book=instance, body="shown")
        Review.objects.create(book=instance, body="hidden")


class ShownReviewsMixin:
    """A project's mixin, shared by several ViewSets: not a django-arc class."""

    def get_queryset(self):
        shown = Review.objects.exclude(body="hidden").order_by("pk")
        return super().get_queryset().prefetch_related(Prefetch("reviews", queryset=shown))


class MixinNarrowedViewSet(ShownReviewsMixin, MixinNarrowedBookResource.as_viewset()):
    pass


@pytest.fixture
def mixin_api(settings):
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    import tests.urls

    router = SimpleRouter()
    router.register("mixin-narrowed-books", MixinNarrowedViewSet, basename="mixin-narrowed")
    patterns = [*tests.urls.urlpatterns, path("mx/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        yield client_for(None)
    finally:
        clear_url_caches()


@pytest.mark.django_db
def test_a_mixins_get_queryset_prefetching_a_rendered_relation_its_own_way_reads(mixin_api):
    """The mixin's ``Prefetch`` came after the plain ``"reviews"`` django-arc prefetches:
    Django refused it (``ValueError``), a get answered 404, a list 500 and a create 500."""
    api, book = mixin_api, BookFactory()
    Review.objects.create(book=book, body="shown")
    Review.objects.create(book=book, body="hidden")
    url = "/mx/mixin-narrowed-books/"
    one, many = api.get(f"{url}{book.pk}/"), api.get(url)
    assert one.status_code == 200, one.content
    assert many.status_code == 200, many.content
    assert one.json()["data"]["reviews"] == [{"body": "shown"}]
    assert many.json()["docs"][0]["reviews"] == [{"body": "shown"}]
    body = {"title": "new", "isbn": "mx-1", "author": AuthorFactory().pk}
    created = api.post(url, body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["data"]["reviews"] == [{"body": "shown"}]


def _shown_reviews():
    shown = Review.objects.exclude(body="hidden").order_by("pk")
    return Book.objects.prefetch_related(Prefetch("reviews", queryset=shown))


class StaticQuerysetViewSet(MixinNarrowedBookResource.as_viewset()):
    @staticmethod
    def get_queryset():
        return _shown_reviews()


class ClassQuerysetViewSet(MixinNarrowedBookResource.as_viewset()):
    @classmethod
    def get_queryset(cls):
        return _shown_reviews()


@pytest.mark.django_db
@pytest.mark.parametrize("viewset", [StaticQuerysetViewSet, ClassQuerysetViewSet])
def test_a_get_queryset_defined_as_a_static_or_class_method_reads(settings, viewset):
    """A ``get_queryset`` that is a ``staticmethod`` (or a ``classmethod``), which DRF calls
    as ``self.get_queryset()``: the wrapper putting its ``Prefetch`` objects first called
    the static one with ``self`` (a ``TypeError``, which the lookup read as a malformed id:
    every get a 404, every list a 500). The class one is wrapped as a classmethod."""
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    import tests.urls

    router = SimpleRouter()
    router.register("kinds", viewset, basename=f"kinds-{viewset.__name__}")
    patterns = [*tests.urls.urlpatterns, path("mk/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    book = BookFactory()
    Review.objects.create(book=book, body="shown")
    Review.objects.create(book=book, body="hidden")
    try:
        api = client_for(None)
        one, many = api.get(f"/mk/kinds/{book.pk}/"), api.get("/mk/kinds/")
    finally:
        clear_url_caches()
    assert one.status_code == 200, one.content
    assert many.status_code == 200, many.content
    assert one.json()["data"]["reviews"] == [{"body": "shown"}]
    assert many.json()["docs"][0]["reviews"] == [{"body": "shown"}]
