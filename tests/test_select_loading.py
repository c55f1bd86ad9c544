"""``?select=`` loads the relations the selected fields render, and no other: each relation
a list joined or prefetched for a field left out was a join, or a query, of rows thrown
away."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, route
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.presets import Audited, SlugLookup
from django_arc.sites import _all_sites
from tests.factories import AuthorFactory, BookFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Book, Review
from tests.testapp.resources import PUBLIC


class ReviewBody(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["id", "body"]


class AuthorName(serializers.ModelSerializer):
    class Meta:
        model = Book._meta.get_field("author").related_model
        fields = ["id", "name"]


class ShelfBookSerializer(serializers.ModelSerializer):
    author = AuthorName(read_only=True)
    reviews = ReviewBody(many=True, read_only=True)
    writer = serializers.CharField(source="author.name", read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author", "reviews", "writer"]


class ShelfBookResource(Resource):
    model = Book
    name = "shelf-books"
    serializer_class = ShelfBookSerializer
    default_sort = "title"
    field_permissions = {"reviews": F.visible_to("staff")}
    permissions = PUBLIC
    cache = False


class WriterBookSerializer(serializers.ModelSerializer):
    author = AuthorName(read_only=True)
    writer = serializers.CharField(source="author.name", read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author", "writer"]


class CachedShelfBookResource(Resource):
    """Cached, rendering no reviews: a cached resource reading Review connects its signals
    for the rest of the run (test_query_cache_invalidation counts on its fast deletes)."""

    model = Book
    name = "cached-shelf-books"
    serializer_class = WriterBookSerializer
    default_sort = "title"
    permissions = PUBLIC
    cache = {"stale_seconds": 30}


@pytest.fixture
def shelf(settings):
    site = ResourceSite(name="shelf-site")
    site.register(ShelfBookResource)
    site.register(CachedShelfBookResource)
    for i in range(3):
        book = BookFactory(title=f"t{i}", author=AuthorFactory(name=f"a{i}"))
        Review.objects.create(book=book, body=f"r{i}")
    try:
        with site_mounted(settings, "s", site):
            yield client_for(None)
    finally:
        _all_sites.remove(site)


def listed(api, query):
    with CaptureQueriesContext(connection) as queries:
        answer = api.get(f"/s/shelf-books/?{query}")
    assert answer.status_code == 200, answer.content
    sql = [q["sql"] for q in queries.captured_queries]
    return answer.json()["docs"], sql


def joins_author(sql):
    return any('JOIN "testapp_author"' in q for q in sql)


def reads_reviews(sql):
    return any('FROM "testapp_review"' in q for q in sql)


@pytest.mark.django_db
def test_select_loads_only_the_relations_the_selected_fields_render(shelf):
    """``?select=title`` ran the reviews' prefetch (and joined the author) for fields it then
    left out; ``?select=reviews`` joined the author."""
    api = shelf
    with override_settings(ARC=arc_with(CACHE={"ENABLED": False})):
        docs, sql = listed(api, "select=title")
        assert docs == [{"id": d["id"], "title": f"t{i}"} for i, d in enumerate(docs)]
        assert len(sql) == 2 and not joins_author(sql) and not reads_reviews(sql)  # count, page

        docs, sql = listed(api, "select=writer")
        assert [d["writer"] for d in docs] == ["a0", "a1", "a2"]
        assert len(sql) == 2 and joins_author(sql) and not reads_reviews(sql)

        docs, sql = listed(api, "select=author")
        assert [d["author"]["name"] for d in docs] == ["a0", "a1", "a2"]
        assert len(sql) == 2 and joins_author(sql) and not reads_reviews(sql)

        everything, sql = listed(api, "")
        assert len(sql) == 2 and joins_author(sql)  # reviews: unreadable to the public


@pytest.mark.django_db
def test_a_field_the_caller_may_read_keeps_its_prefetch_and_one_it_may_not_loses_it(
    shelf, django_user_model
):
    staff = django_user_model.objects.create_user("s")
    staff.arc_roles = ["staff"]
    api = client_for(staff)
    with override_settings(ARC=arc_with(CACHE={"ENABLED": False})):
        docs, sql = listed(api, "select=reviews")
        assert [d["reviews"][0]["body"] for d in docs] == ["r0", "r1", "r2"]
        assert len(sql) == 3 and reads_reviews(sql) and not joins_author(sql)
        docs, sql = listed(api, "")
        assert len(sql) == 3 and reads_reviews(sql) and joins_author(sql)
        assert docs[0]["reviews"] == [{"id": docs[0]["reviews"][0]["id"], "body": "r0"}]


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_cached_selection_is_still_invalidated_by_the_relations_it_left_out(shelf):
    """The answers' dependencies are the resource's, whatever a selection loaded: a
    ``?select=writer`` answer is bumped by the author renamed."""
    api = shelf
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        assert api.get("/s/cached-shelf-books/?select=writer")["X-Cache"] == "MISS"
        assert api.get("/s/cached-shelf-books/?select=writer")["X-Cache"] == "HIT"
        author = Book.objects.get(title="t0").author
        author.name = "renamed"
        author.save()
        again = api.get("/s/cached-shelf-books/?select=writer")
    assert again["X-Cache"] == "MISS"
    assert again.json()["docs"][0]["writer"] == "renamed"


class CountedReviewsSerializer(serializers.ModelSerializer):
    reviews = ReviewBody(many=True, read_only=True)
    review_count = serializers.SerializerMethodField()

    def get_review_count(self, obj):
        return len(obj.reviews.all())

    class Meta:
        model = Book
        fields = ["id", "title", "reviews", "review_count"]


class CountedReviewsBookResource(Resource):
    """Prefetches, in its own ``get_queryset()``, the reviews its method field counts (as
    docs/resources.md asks: what a ``SerializerMethodField`` touches is the project's to
    prefetch), which its ``reviews`` field renders too."""

    model = Book
    name = "counted-review-books"
    serializer_class = CountedReviewsSerializer
    default_sort = "title"
    permissions = PUBLIC
    cache = False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("reviews")


@pytest.mark.django_db
def test_a_selection_keeps_the_relations_the_projects_own_get_queryset_loads(settings):
    """``?select=review_count`` dropped the project's own ``"reviews"`` prefetch with
    django-arc's (the same path, for the ``reviews`` field left out): the method field then
    read each row's reviews in a query of its own (one per row)."""
    site = ResourceSite(name="counted-site")
    site.register(CountedReviewsBookResource)
    for i in range(3):
        book = BookFactory(title=f"t{i}")
        Review.objects.create(book=book, body=f"r{i}")
    try:
        with (
            site_mounted(settings, "c", site),
            override_settings(ARC=arc_with(CACHE={"ENABLED": False})),
            CaptureQueriesContext(connection) as queries,
        ):
            answer = client_for(None).get("/c/counted-review-books/?select=review_count")
    finally:
        _all_sites.remove(site)
    assert answer.status_code == 200, answer.content
    assert [d["review_count"] for d in answer.json()["docs"]] == [1, 1, 1]
    assert len(queries) == 3, [q["sql"] for q in queries.captured_queries]  # count, page, reviews


class ManagerBookResource(Resource):
    """``queryset`` given a manager, the type of its default (``model._default_manager``)."""

    model = Book
    name = "manager-books"
    queryset = Book.objects
    serializer_class = CountedReviewsSerializer
    default_sort = "title"
    permissions = PUBLIC
    cache = False


@pytest.mark.django_db
def test_a_queryset_given_as_a_manager_lists(settings):
    """Whether the resource loads relations of its own read ``queryset.query``, which a
    manager has not: every list of a resource whose ``queryset`` is a manager was a 500."""
    site = ResourceSite(name="manager-site")
    site.register(ManagerBookResource)
    book = BookFactory(title="t")
    Review.objects.create(book=book, body="r")
    try:
        with (
            site_mounted(settings, "mg", site),
            override_settings(ARC=arc_with(CACHE={"ENABLED": False})),
        ):
            api = client_for(None)
            whole, selected = (
                api.get("/mg/manager-books/"),
                api.get("/mg/manager-books/?select=title"),
            )
    finally:
        _all_sites.remove(site)
    assert whole.status_code == 200, whole.content
    assert whole.json()["docs"][0]["review_count"] == 1
    assert selected.status_code == 200, selected.content
    assert selected.json()["docs"] == [{"id": book.pk, "title": "t"}]


def got(api, pk):
    with CaptureQueriesContext(connection) as queries:
        answer = api.get(f"/s/shelf-books/{pk}/")
    sql = [q["sql"] for q in queries.captured_queries]
    return answer, sql


@pytest.mark.django_db
def test_a_get_loads_only_the_relations_the_caller_may_read(shelf, django_user_model):
    """A get joined and prefetched every relation its serializer renders, those of the fields
    the caller may not read too: the public's get of a book ran the reviews' query (only
    staff read them) and threw the rows away, as a list did before it loaded what it
    renders. The row found, its 404 and its answer stay."""
    book = Book.objects.get(title="t0")
    staff = django_user_model.objects.create_user("s")
    staff.arc_roles = ["staff"]
    with override_settings(ARC=arc_with(CACHE={"ENABLED": False})):
        answer, sql = got(client_for(None), book.pk)
        assert answer.status_code == 200, answer.content
        assert answer.json()["data"] == {
            "id": book.pk,
            "title": "t0",
            "author": {"id": book.author_id, "name": "a0"},
            "writer": "a0",
        }
        assert len(sql) == 1 and joins_author(sql) and not reads_reviews(sql)

        answer, sql = got(staff_client := client_for(staff), book.pk)
        assert answer.status_code == 200, answer.content
        assert [r["body"] for r in answer.json()["data"]["reviews"]] == ["r0"]
        assert len(sql) == 2 and joins_author(sql) and reads_reviews(sql)

        missing = Book.objects.order_by("-pk").first().pk + 1
        for api in (client_for(None), staff_client):
            answer, sql = got(api, missing)
            assert answer.status_code == 404, answer.content
            assert len(sql) == 1 and not reads_reviews(sql)


class ReviewedShelfSerializer(serializers.ModelSerializer):
    reviews = ReviewBody(many=True, read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "reviews"]


class ReviewedShelfResource(Resource):
    """Its serializer renders the reviews (django-arc prefetches them); nothing of the
    project's loads any relation."""

    model = Book
    name = "reviewed-shelf"
    serializer_class = ReviewedShelfSerializer
    default_sort = "title"
    permissions = PUBLIC
    cache = False


class ReviewCountSerializer(serializers.ModelSerializer):
    review_count = serializers.SerializerMethodField()

    def get_review_count(self, obj):
        return len(obj.reviews.all())

    class Meta:
        model = Book
        fields = ["id", "title", "review_count"]


def review_counting_viewsets():
    """ViewSet subclasses rendering with a serializer of their own, which reads the reviews
    the resource's serializer renders: by ``get_serializer_class()``, by ``get_serializer()``."""
    generated = ReviewedShelfResource.as_viewset()

    class ByClass(generated):
        def get_serializer_class(self):
            return ReviewCountSerializer

    class ByInstance(generated):
        def get_serializer(self, *args, **kwargs):
            kwargs.setdefault("context", self.get_serializer_context())
            return ReviewCountSerializer(*args, **kwargs)

    class CountedByViewSet(CountedReviewsOwnLoading.as_viewset()):
        def get_queryset(self):
            return super().get_queryset().prefetch_related("reviews")

    return {"by-class": ByClass, "by-instance": ByInstance, "by-queryset": CountedByViewSet}


class CountedReviewsOwnLoading(Resource):
    """:class:`CountedReviewsBookResource` leaving the reviews' prefetch to a ViewSet
    subclass's ``get_queryset()``."""

    model = Book
    name = "counted-by-viewset"
    serializer_class = CountedReviewsSerializer
    default_sort = "title"
    permissions = PUBLIC
    cache = False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "prefix,select",
    [("by-class", "title"), ("by-instance", "title"), ("by-queryset", "title,review_count")],
)
def test_a_selection_keeps_the_relations_a_viewsets_own_serializer_may_read(
    settings, prefix, select
):
    """A ViewSet subclass's serializer (its ``get_serializer_class()`` or ``get_serializer()``)
    may read any relation the resource's own serializer renders: ``?select=title`` keeps
    django-arc's prefetch of the reviews it left out, or the subclass's serializer read them
    once per row. A subclass's ``get_queryset()`` prefetching the reviews a method field
    counts (``?select=review_count`` leaving ``reviews`` out) keeps its prefetch too."""
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    router = SimpleRouter()
    for name, viewset in review_counting_viewsets().items():
        router.register(name, viewset, basename=f"review-counting-{name}")
    for i in range(3):
        Review.objects.create(book=BookFactory(title=f"t{i}"), body=f"r{i}")
    import tests.urls

    settings.ROOT_URLCONF = type(
        "urls", (), {"urlpatterns": [*tests.urls.urlpatterns, path("x/", include(router.urls))]}
    )
    clear_url_caches()
    try:
        with (
            override_settings(ARC=arc_with(CACHE={"ENABLED": False})),
            CaptureQueriesContext(connection) as queries,
        ):
            answer = client_for(None).get(f"/x/{prefix}/?select={select}")
    finally:
        clear_url_caches()
    assert answer.status_code == 200, answer.content
    assert [d["title"] for d in answer.json()["docs"]] == ["t0", "t1", "t2"]
    assert len(queries) == 3, [q["sql"] for q in queries.captured_queries]  # count, page, reviews


class CountedByQuerysetResource(Resource):
    """:class:`CountedReviewsBookResource` prefetching the reviews by its ``queryset``."""

    model = Book
    name = "counted-by-queryset"
    serializer_class = CountedReviewsSerializer
    queryset = Book.objects.prefetch_related("reviews")
    default_sort = "title"
    permissions = PUBLIC
    cache = False


class ReviewLineSerializer(serializers.ModelSerializer):
    book_title = serializers.CharField(source="book.title", read_only=True)
    writer = serializers.CharField(source="book.author.name", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "body", "book_title", "writer"]


class ReviewLineResource(Resource):
    """Joins ``book__author`` (``select_related``'s tree holds ``book`` below nothing)."""

    model = Review
    name = "review-lines"
    serializer_class = ReviewLineSerializer
    default_sort = "body"
    permissions = PUBLIC
    cache = False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource,query,expected,statements",
    [
        # the resource's queryset prefetching what a method field counts: kept
        (CountedByQuerysetResource, "select=review_count", [1, 1, 1], 3),
        # a field needing book, which the tree held below book__author: still joined
        (ReviewLineResource, "select=book_title", ["t0", "t1", "t2"], 2),
    ],
    ids=["queryset", "joined below a dropped path"],
)
def test_a_selection_loads_what_its_fields_read_through_other_paths(
    settings, resource, query, expected, statements
):
    """``?select=`` drops only what no rendered field reads: a ``queryset`` of the resource's
    loading a relation is the project's (its method field counting the reviews read them
    once per row without it), and a path a rendered field needs (``book``) stays joined when
    the one that held it (``book__author``) is dropped, or each row read its book."""
    site = ResourceSite(name="other-paths-site")
    site.register(resource)
    for i in range(3):
        Review.objects.create(book=BookFactory(title=f"t{i}"), body=f"r{i}")
    try:
        with (
            site_mounted(settings, "o", site),
            override_settings(ARC=arc_with(CACHE={"ENABLED": False})),
            CaptureQueriesContext(connection) as queries,
        ):
            answer = client_for(None).get(f"/o/{resource.name}/?{query}")
    finally:
        _all_sites.remove(site)
    assert answer.status_code == 200, answer.content
    field = query.split("=")[1]
    assert [d[field] for d in answer.json()["docs"]] == expected
    assert len(queries) == statements, [q["sql"] for q in queries.captured_queries]


class AnsweringShelfResource(Resource):
    """:class:`ShelfBookResource` answering its row on other paths than a get: the slug
    route, detail routes (a read, a write) and an action."""

    model = Book
    name = "answering-shelf"
    serializer_class = ShelfBookSerializer
    default_sort = "title"
    field_permissions = {"reviews": F.visible_to("staff")}
    permissions = PUBLIC
    presets = [SlugLookup("isbn")]
    cache = False

    @route("GET", "card", detail=True, permissions=P.allow_public())
    def card(self, request, instance):
        return instance

    @route("POST", "stamp", detail=True, permissions=P.allow_public())
    def stamp(self, request, instance):
        return instance

    @action(permissions=P.allow_public())
    def mark(self, request, instance, data):
        return instance


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["slug", "card", "stamp", "action"])
def test_every_path_answering_a_row_loads_only_what_the_caller_may_read(
    settings, django_user_model, path
):
    """Only a get loaded what its answer renders: the slug route, detail routes and actions
    answering a row joined and prefetched every relation, those of fields the caller may
    not read too (the public's answer ran the staff-only reviews' query, and an action read
    them again after its handler), then threw the rows away. Their answers stay."""
    site = ResourceSite(name="answering-site")
    site.register(AnsweringShelfResource)
    book = BookFactory(title="t0", author=AuthorFactory(name="a0"))
    Review.objects.create(book=book, body="r0")
    staff = django_user_model.objects.create_user("s")
    staff.arc_roles = ["staff"]
    base = "/s/answering-shelf"
    request = {
        "slug": ("get", f"{base}/slug/{book.isbn}/", None),
        "card": ("get", f"{base}/{book.pk}/card/", None),
        "stamp": ("post", f"{base}/{book.pk}/stamp/", {}),
        "action": ("post", f"{base}/{book.pk}/action/", {"action": "mark"}),
    }[path]
    method, url, body = request
    public_answer = {
        "id": book.pk,
        "title": "t0",
        "author": {"id": book.author_id, "name": "a0"},
        "writer": "a0",
    }
    staff_answer = {**public_answer, "reviews": [{"id": book.reviews.get().pk, "body": "r0"}]}
    try:
        with site_mounted(settings, "s", site):
            for api, expected, reviewed in (
                (client_for(None), public_answer, False),
                (client_for(staff), staff_answer, True),
            ):
                with CaptureQueriesContext(connection) as queries:
                    answer = getattr(api, method)(url, body, format="json")
                assert answer.status_code == 200, answer.content
                assert answer.json()["data"] == expected
                sql = [q["sql"] for q in queries.captured_queries]
                assert reads_reviews(sql) is reviewed, sql
                assert joins_author(sql)
    finally:
        _all_sites.remove(site)


class ReviewedBook(serializers.ModelSerializer):
    reviews = ReviewBody(many=True, read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "reviews"]


class ShelvedAuthorSerializer(serializers.ModelSerializer):
    books = ReviewedBook(many=True, read_only=True)

    class Meta:
        model = Book._meta.get_field("author").related_model
        fields = ["id", "name", "books"]


class RenamedAuthorResource(Resource):
    """An author with its books and each book's reviews (prefetched: ``books``,
    ``books__reviews``), the books staff's only; a write route and an action renaming it
    through ``perform_update``, as docs/presets.md shows a route writing a body."""

    model = Book._meta.get_field("author").related_model
    name = "renamed-authors"
    serializer_class = ShelvedAuthorSerializer
    default_sort = "name"
    field_permissions = {"books": F.visible_to("staff")}
    permissions = PUBLIC
    cache = False

    @route("POST", "rename", detail=True, permissions=P.allow_public())
    def rename(self, request, instance, view):
        return view.perform_update(instance, {"name": request.data["name"]}).instance

    @action(permissions=P.allow_public())
    def retitle(self, request, instance, data, view):
        return view.perform_update(instance, {"name": data["name"]}).instance


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["route", "action"])
def test_a_write_route_updating_its_row_reads_every_relation_once(settings, path):
    """The row of a write route or an action was loaded for the caller's answer only
    (answers_rendered_row), and ``perform_update`` rendered it whole for the event's
    ``previous`` from that row: the public's rename read the books staff read, then each
    book's reviews in a query of its own (one per book), where the row of an update comes
    with every relation. The event is the same whoever writes."""
    from django_arc.outbox.models import OutboxEvent

    author = AuthorFactory(name="a")
    base = "/s/renamed-authors"
    url, body = {
        "route": (f"{base}/{author.pk}/rename/", lambda name: {"name": name}),
        "action": (f"{base}/{author.pk}/action/", lambda name: {"action": "retitle", "name": name}),
    }[path]
    counts = _public_writes_per_shelf(settings, RenamedAuthorResource, author, url, body)
    assert counts[0] == counts[1], counts
    event = OutboxEvent.objects.filter(type="renamed-authors.updated").last()
    assert event.payload["changed"] == ["name"]
    assert len(event.payload["data"]["books"]) == 5


class AuditedAuthorResource(Resource):
    """:class:`RenamedAuthorResource` audited: an action's entry compares the whole row
    (books and their reviews with it) before and after its handler."""

    model = Book._meta.get_field("author").related_model
    name = "audited-authors"
    serializer_class = ShelvedAuthorSerializer
    default_sort = "name"
    field_permissions = {"books": F.visible_to("staff")}
    permissions = PUBLIC
    presets = [Audited()]
    cache = False

    @action(permissions=P.allow_public())
    def touch(self, request, instance, data):
        instance.name = data["name"]
        instance.save()
        return instance


@pytest.mark.django_db
def test_an_audited_action_loads_every_relation_with_its_row(settings):
    """An action of an audited resource snapshots the whole row for its entry: its row
    comes with every relation (answers_rendered_row is false for it), not with the
    caller's answer's only, or the public's entry read each book's reviews in a query of
    its own, before and after the handler."""
    from django_arc.audit.models import AuditLog

    author = AuthorFactory(name="a")
    url = f"/s/audited-authors/{author.pk}/action/"
    counts = _public_writes_per_shelf(
        settings, AuditedAuthorResource, author, url, lambda name: {"action": "touch", "name": name}
    )
    assert counts[0] == counts[1], counts
    entry = AuditLog.objects.filter(resource="audited-authors").order_by("pk").last()
    assert (entry.before, entry.after) == ({"name": "n1"}, {"name": "n5"})


def _public_writes_per_shelf(settings, resource, author, url, body) -> list[int]:
    """The SQL statements of the public's POST of ``body(name)`` to ``url`` (``resource``
    mounted on a site of its own under ``/s/``) renaming ``author`` with 1 book, then 5,
    each book with two reviews; each answer the renamed author, books hidden."""
    site = ResourceSite(name=f"{resource.name}-site")
    site.register(resource)
    counts = []
    try:
        with site_mounted(settings, "s", site):
            api = client_for(None)
            for books in (1, 5):
                while author.books.count() < books:
                    book = BookFactory(author=author)
                    Review.objects.create(book=book, body="r")
                    Review.objects.create(book=book, body="s")
                with CaptureQueriesContext(connection) as queries:
                    answer = api.post(url, body(f"n{books}"), format="json")
                assert answer.status_code == 200, answer.content
                assert answer.json()["data"] == {"id": author.pk, "name": f"n{books}"}
                counts.append(len(queries.captured_queries))
    finally:
        _all_sites.remove(site)
    return counts


@pytest.mark.django_db
def test_a_get_of_an_audited_resource_loads_only_what_the_caller_may_read(settings):
    """Only a write of an audited resource snapshots the whole row: a GET of one (nothing
    to snapshot) loads what its caller's answer renders, as any GET. The public's get of an
    audited author read the staff-only books and their reviews it never renders."""
    author = AuthorFactory(name="a")
    for _ in range(3):
        Review.objects.create(book=BookFactory(author=author), body="r")
    site = ResourceSite(name="audited-authors-get-site")
    site.register(AuditedAuthorResource)
    try:
        with site_mounted(settings, "s", site):
            with CaptureQueriesContext(connection) as queries:
                answer = client_for(None).get(f"/s/audited-authors/{author.pk}/")
    finally:
        _all_sites.remove(site)
    assert answer.status_code == 200, answer.content
    assert answer.json()["data"] == {"id": author.pk, "name": "a"}
    tables = {Book._meta.db_table, Review._meta.db_table}
    read = [q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in tables)]
    assert read == [], read
