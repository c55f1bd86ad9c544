"""An update renders the rows joined with it (``select_related``) as they are after the
write: a hook changing the joined row's columns through another object (a queryset
``update()``, a signal) left the answer and the event with the values read before."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import FilteredRelation, Prefetch, Q
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from tests.factories import AuthorFactory, BookFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Author, Book, CodeThing, Review
from tests.testapp.resources import PUBLIC


class AuthorName(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name"]


class JoinedBookSerializer(serializers.ModelSerializer):
    author = AuthorName(read_only=True)
    writer = serializers.CharField(source="author.name", read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author", "writer"]


class RenamingAuthorBookResource(Resource):
    """Each update of a book renames its author through a queryset."""

    model = Book
    name = "renaming-books"
    serializer_class = JoinedBookSerializer
    presets = [presets.Bulk()]
    permissions = PUBLIC

    def after_update(self, request, instance):
        Author.objects.filter(pk=instance.author_id).update(name=f"{instance.title}'s author")


class PlainBookResource(Resource):
    model = Book
    name = "plain-joined-books"
    fields = ["id", "title", "author"]
    permissions = PUBLIC


class FamousAuthorBookSerializer(serializers.ModelSerializer):
    famous = serializers.SerializerMethodField()

    def get_famous(self, obj):
        author = getattr(obj, "famous_author", None)
        return author.name if author else None

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "author", "famous"]


class FilteredRelationBookResource(Resource):
    """Joins a ``FilteredRelation`` of its own: an alias only its annotated queryset knows."""

    model = Book
    name = "famous-author-books"
    serializer_class = FamousAuthorBookSerializer
    permissions = PUBLIC

    def get_queryset(self, request):
        famous = FilteredRelation("author", condition=Q(author__name__startswith="F"))
        queryset = super().get_queryset(request).annotate(famous_author=famous)
        return queryset.select_related("famous_author")


@pytest.fixture
def joined_api(settings):
    site = ResourceSite(name="joined-site")
    site.register(RenamingAuthorBookResource)
    site.register(PlainBookResource)
    site.register(FilteredRelationBookResource)
    try:
        with site_mounted(settings, "j", site):
            yield client_for(None)
    finally:
        _all_sites.remove(site)


@pytest.mark.django_db
def test_an_update_renders_the_joined_row_as_its_hooks_left_it(joined_api):
    api = joined_api
    book = BookFactory(title="Dune", author=AuthorFactory(name="Frank"))
    answer = api.patch(f"/j/renaming-books/{book.pk}/", {"title": "Emma"}, format="json")
    assert answer.status_code == 200, answer.content
    data = answer.json()["data"]
    assert data["author"]["name"] == data["writer"] == "Emma's author"
    event = OutboxEvent.objects.get(type="renaming-books.updated").payload
    assert event["data"]["writer"] == "Emma's author"
    assert sorted(event["changed"]) == ["author", "title", "writer"]
    assert event["previous"]["writer"] == "Frank"


@pytest.mark.django_db
def test_a_bulk_update_reads_the_joined_rows_again_in_one_query(joined_api):
    api = joined_api
    books = [BookFactory(title=f"t{i}", author=AuthorFactory(name=f"a{i}")) for i in range(3)]

    def patched(titles):
        items = [{"id": b.pk, "title": t} for b, t in zip(books, titles, strict=True)]
        with CaptureQueriesContext(connection) as queries:
            answer = api.patch("/j/renaming-books/bulk/", {"items": items}, format="json")
        assert answer.status_code == 200, answer.content
        return len(queries)

    few = patched(["x0", "x1", "x2"])
    events = OutboxEvent.objects.filter(type="renaming-books.updated").order_by("pk")
    assert [e.payload["data"]["writer"] for e in events] == [f"x{i}'s author" for i in range(3)]
    books.extend(BookFactory(title=f"u{i}", author=AuthorFactory()) for i in range(3))
    assert patched([f"y{i}" for i in range(6)]) == few + 3  # the hook's UPDATE per row


@pytest.mark.django_db
def test_an_update_joining_nothing_reads_nothing_more(joined_api):
    """The generated serializer renders a foreign key as its id: nothing is joined, and
    nothing is read again."""
    api = joined_api
    book = BookFactory(title="Dune")
    with CaptureQueriesContext(connection) as queries:
        answer = api.patch(f"/j/plain-joined-books/{book.pk}/", {"title": "E"}, format="json")
    assert answer.status_code == 200, answer.content
    assert len(queries) == PLAIN_UPDATE_STATEMENTS, [q["sql"] for q in queries.captured_queries]


#: the transaction (a savepoint inside the test's), the row, the UPDATE, the event's INSERT
PLAIN_UPDATE_STATEMENTS = 5


@pytest.mark.django_db
def test_a_written_row_of_a_queryset_joining_a_filtered_relation_is_answered(joined_api):
    """``select_related`` of a ``FilteredRelation``'s alias was handed to
    ``prefetch_related_objects`` (a ``ValueError``) and to the base manager re-reading the
    joined rows (a ``FieldError``): every create and update was a 500, the row written."""
    api, author = joined_api, AuthorFactory(name="Frank")
    url = "/j/famous-author-books/"
    created = api.post(url, {"title": "Dune", "isbn": "fr-1", "author": author.pk}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["data"]["id"]
    read = api.get(f"{url}{pk}/")
    assert read.status_code == 200 and read.json()["data"]["famous"] == "Frank", read.content
    patched = api.patch(f"{url}{pk}/", {"title": "Emma"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["data"]["title"] == "Emma"
    assert patched.json()["data"]["famous"] == "Frank"


@pytest.mark.django_db
def test_a_written_rows_filtered_relation_is_the_one_a_read_of_it_joins(joined_api):
    """The alias a ``FilteredRelation`` joins was left as the row was read: a created row
    answered ``famous: null`` where a GET of it says "Frank", and a row whose author was
    changed answered the old famous author (in its event too), where a GET says the new."""
    api, url = joined_api, "/j/famous-author-books/"
    frank, fred, george = (AuthorFactory(name=n) for n in ("Frank", "Fred", "George"))
    created = api.post(url, {"title": "Dune", "isbn": "fr-2", "author": frank.pk}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["data"]["id"]
    assert created.json()["data"]["famous"] == "Frank"
    assert api.get(f"{url}{pk}/").json()["data"]["famous"] == "Frank"
    moved = api.patch(f"{url}{pk}/", {"author": fred.pk}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["data"]["famous"] == "Fred"
    assert api.get(f"{url}{pk}/").json()["data"]["famous"] == "Fred"
    # an author the condition leaves out: none, as a read joins none
    unknown = api.patch(f"{url}{pk}/", {"author": george.pk}, format="json")
    assert unknown.status_code == 200, unknown.content
    assert unknown.json()["data"]["famous"] is None


class OwnerName(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username"]


class OwnedThingSerializer(serializers.ModelSerializer):
    owner = OwnerName(read_only=True)

    class Meta:
        model = CodeThing
        fields = ["code", "name", "owner"]


class LosingOwnerThingResource(Resource):
    """Each update's hook does to the joined owner what the new ``name`` says: deletes it
    (its foreign key is ``SET_NULL``), points the row at no owner, or at another one, each
    through a queryset."""

    model = CodeThing
    name = "losing-owner-things"
    serializer_class = OwnedThingSerializer
    presets = [presets.Bulk()]
    permissions = PUBLIC

    def after_update(self, request, instance):
        verb, _, other = instance.name.partition(":")
        rows = CodeThing.objects.filter(pk=instance.pk)
        if verb == "delete":
            User.objects.filter(pk=instance.owner_id).delete()
        elif verb == "unset":
            rows.update(owner=None)
        elif verb == "swap":
            rows.update(owner=User.objects.get(username=other))


@pytest.fixture
def owner_api(settings):
    site = ResourceSite(name="owner-site")
    site.register(LosingOwnerThingResource)
    try:
        with site_mounted(settings, "o", site):
            yield client_for(None)
    finally:
        _all_sites.remove(site)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["delete", "unset", "swap:other"])
def test_an_update_whose_hook_takes_the_joined_row_away_answers_as_a_get_after(owner_api, name):
    """A hook deleting the joined owner (its foreign key set to NULL), or pointing the row at
    no owner or another one through a queryset, left the owner read before the write in the
    update's answer and event: the joined rows were read again only while the row still
    held the same one."""
    api = owner_api
    User.objects.create(username="other")
    CodeThing.objects.create(code="c1", name="n", owner=User.objects.create(username="first"))
    answer = api.patch("/o/losing-owner-things/c1/", {"name": name}, format="json")
    assert answer.status_code == 200, answer.content
    read = api.get("/o/losing-owner-things/c1/")
    assert read.status_code == 200, read.content
    assert answer.json()["data"] == read.json()["data"]
    expected = {"username": "other"} if name.startswith("swap") else None
    owner = read.json()["data"]["owner"]
    assert (owner and {"username": owner["username"]}) == expected
    event = OutboxEvent.objects.get(type="losing-owner-things.updated").payload
    assert event["data"] == read.json()["data"]


@pytest.mark.django_db
def test_a_bulk_update_whose_hook_takes_the_joined_rows_away_answers_as_a_get_after(owner_api):
    api = owner_api
    User.objects.create(username="other")
    for i in range(3):
        CodeThing.objects.create(
            code=f"c{i}", name="n", owner=User.objects.create(username=f"u{i}")
        )
    items = [
        {"id": "c0", "name": "delete"},
        {"id": "c1", "name": "unset"},
        {"id": "c2", "name": "swap:other"},
    ]
    answer = api.patch("/o/losing-owner-things/bulk/", {"items": items}, format="json")
    assert answer.status_code == 200, answer.content
    for i in range(3):
        read = api.get(f"/o/losing-owner-things/c{i}/").json()["data"]
        event = OutboxEvent.objects.get(type="losing-owner-things.updated", payload__id=f"c{i}")
        assert event.payload["data"] == read


class TitledReviewSerializer(serializers.ModelSerializer):
    book_title = serializers.CharField(source="book.title", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "body", "book", "book_title"]


class RetitlingReviewResource(Resource):
    """Each create's hook retitles the reviewed book through a queryset: the book the body
    named was read by the create's validation, before."""

    model = Review
    name = "retitling-reviews"
    serializer_class = TitledReviewSerializer
    presets = [presets.Bulk()]
    permissions = PUBLIC

    def after_create(self, request, instance):
        Book.objects.filter(pk=instance.book_id).update(title=f"reviewed: {instance.body}")


class PlainReviewResource(Resource):
    model = Review
    name = "plain-reviews"
    fields = ["id", "body", "book"]
    presets = [presets.Bulk()]
    permissions = PUBLIC


@pytest.fixture
def review_api(settings):
    site = ResourceSite(name="review-site")
    site.register(RetitlingReviewResource)
    site.register(PlainReviewResource)
    try:
        with site_mounted(settings, "r", site):
            yield client_for(None)
    finally:
        _all_sites.remove(site)


@pytest.mark.django_db
def test_a_create_renders_the_joined_row_as_its_hooks_left_it(review_api):
    """A create rendered the joined book as its validation read it: a hook retitling it
    through a queryset left the old title in the answer and the event, which a get after
    the write does not show."""
    api, book = review_api, BookFactory(title="Dune")
    answer = api.post("/r/retitling-reviews/", {"body": "good", "book": book.pk}, format="json")
    assert answer.status_code == 201, answer.content
    read = api.get(f"/r/retitling-reviews/{answer.json()['data']['id']}/").json()["data"]
    assert answer.json()["data"] == read
    assert read["book_title"] == "reviewed: good"
    event = OutboxEvent.objects.get(type="retitling-reviews.created").payload
    assert event["data"] == read


@pytest.mark.django_db
def test_a_bulk_create_renders_the_joined_rows_as_its_hooks_left_them(review_api):
    api = review_api
    books = [BookFactory(title=f"t{i}") for i in range(3)]
    items = [{"body": f"b{i}", "book": book.pk} for i, book in enumerate(books)]
    answer = api.post("/r/retitling-reviews/bulk/", {"items": items}, format="json")
    assert answer.status_code == 201, answer.content
    for event in OutboxEvent.objects.filter(type="retitling-reviews.created"):
        read = api.get(f"/r/retitling-reviews/{event.payload['id']}/").json()["data"]
        assert event.payload["data"] == read
        assert read["book_title"] == f"reviewed: {read['body']}"


@pytest.mark.django_db
def test_a_create_joining_nothing_reads_nothing_more(review_api):
    """The generated serializer renders a foreign key as its id: nothing is joined, and
    nothing is read again after a create, single or bulk."""
    api, book = review_api, BookFactory()
    with CaptureQueriesContext(connection) as queries:
        answer = api.post("/r/plain-reviews/", {"body": "b", "book": book.pk}, format="json")
    assert answer.status_code == 201, answer.content
    assert len(queries) == PLAIN_CREATE_STATEMENTS, [q["sql"] for q in queries.captured_queries]
    items = [{"body": f"b{i}", "book": book.pk} for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        answer = api.post("/r/plain-reviews/bulk/", {"items": items}, format="json")
    assert answer.status_code == 201, answer.content
    assert len(queries) == PLAIN_BULK_CREATE_STATEMENTS, [
        q["sql"] for q in queries.captured_queries
    ]


#: the transaction (a savepoint inside the test's), the book the body names, the INSERT, the
#: event's INSERT, the release; a bulk: the books its items name (one query), one INSERT of
#: the rows and one of their events
PLAIN_CREATE_STATEMENTS = 5
PLAIN_BULK_CREATE_STATEMENTS = 5


class ReviewedBookSerializer(serializers.ModelSerializer):
    writer = serializers.CharField(source="author.name", read_only=True)
    reviews = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Book
        fields = ["id", "title", "author", "writer", "reviews"]


class ReviewingBookResource(Resource):
    """An action whose handler reviews the book and renames its author through a queryset,
    answering the book."""

    model = Book
    name = "reviewing-books"
    serializer_class = ReviewedBookSerializer
    permissions = PUBLIC
    presets = [presets.Audited()]

    @action(permissions=P.allow_public())
    def review(self, request, instance, data):
        Author.objects.filter(pk=instance.author_id).update(name="Reviewed")
        Review.objects.create(book=instance, body="new")
        return instance


@pytest.mark.django_db
def test_an_action_answers_the_row_as_its_handler_left_its_relations(settings):
    """An action reads its row with every relation the serializer renders (joined and
    prefetched); a handler reviewing the book (``Review.objects.create``) and renaming its
    author through a queryset, then answering the book, answered the author's old name and
    no review, where a get after it renders both: the relations of the rows it answers are
    read again after the handler, as an update's are after its hooks."""
    site = ResourceSite(name="reviewing-site")
    site.register(ReviewingBookResource)
    api = client_for(None)
    book = BookFactory(title="Dune", author=AuthorFactory(name="Frank"))
    try:
        with site_mounted(settings, "rv", site):
            path = f"/rv/reviewing-books/{book.pk}/"
            acted = api.post(f"{path}action/", {"action": "review"}, format="json")
            after = api.get(path)
    finally:
        _all_sites.remove(site)
    assert acted.status_code == 200, acted.content
    review = Review.objects.get(book=book)
    assert after.json()["data"]["writer"] == "Reviewed"
    assert after.json()["data"]["reviews"] == [review.pk]
    assert acted.json()["data"] == after.json()["data"]
    # and so does its audit row's after
    audited = AuditLog.objects.get(action="review")
    assert (audited.before["writer"], audited.before["reviews"]) == ("Frank", [])
    assert (audited.after["writer"], audited.after["reviews"]) == ("Reviewed", [review.pk])


class ShownReviewsBookResource(Resource):
    """A project narrowing the reviews a read renders (``Prefetch`` of shown ones only); an
    action answering the books as a list it read, and as a queryset."""

    model = Book
    name = "shown-reviews-books"
    serializer_class = ReviewedBookSerializer
    permissions = PUBLIC

    def get_queryset(self, request):
        shown = Review.objects.filter(body="shown")
        return super().get_queryset(request).prefetch_related(Prefetch("reviews", queryset=shown))

    @action(permissions=P.allow_public())
    def as_list(self, request, instance, data):
        return list(Book.objects.order_by("pk"))

    @action(permissions=P.allow_public())
    def as_queryset(self, request, instance, data):
        return Book.objects.order_by("pk")


class ValuesBookResource(Resource):
    """An action answering a ``values()`` queryset of its rows: dicts, no rows to load."""

    model = Book
    name = "values-books"
    fields = ["id", "title"]
    permissions = PUBLIC

    @action(permissions=P.allow_public())
    def as_values(self, request, instance, data):
        return Book.objects.order_by("pk").values("id", "title", "isbn")


@pytest.mark.django_db
def test_an_action_answering_a_queryset_renders_its_rows_as_a_list_of_them(settings):
    """An action's rows are rendered with the relations a read of them loads (62c8634) when
    the handler answers one or a list of them; one answering a queryset (which the answer
    renders as its rows too) rendered them as the handler's queryset left them: the
    reviews the project's ``Prefetch`` keeps from every read shown, and each row's author
    and reviews read one query per row."""
    site = ResourceSite(name="shown-reviews-site")
    site.register(ShownReviewsBookResource)
    site.register(ValuesBookResource)
    api = client_for(None)
    books = [BookFactory(title=f"B{i}", author=AuthorFactory(name=f"A{i}")) for i in range(5)]
    for book in books:
        Review.objects.create(book=book, body="shown")
        Review.objects.create(book=book, body="hidden")
    counts, answers = {}, {}
    try:
        with site_mounted(settings, "srv", site):
            path = f"/srv/shown-reviews-books/{books[0].pk}/"
            listed = api.get("/srv/shown-reviews-books/")
            for name in ("as_list", "as_queryset"):
                with CaptureQueriesContext(connection) as queries:
                    acted = api.post(f"{path}action/", {"action": name}, format="json")
                assert acted.status_code == 200, acted.content
                counts[name], answers[name] = len(queries), acted.json()["data"]
            path = f"/srv/values-books/{books[0].pk}/"
            valued = api.post(f"{path}action/", {"action": "as_values"}, format="json")
    finally:
        _all_sites.remove(site)
    got = sorted(listed.json()["docs"], key=lambda row: row["id"])
    assert [row["reviews"] for row in got] == [
        list(Review.objects.filter(book=book, body="shown").values_list("pk", flat=True))
        for book in books
    ]
    assert answers["as_list"] == got
    assert answers["as_queryset"] == got
    assert counts["as_queryset"] == counts["as_list"], counts
    # a values() queryset holds no rows to load: still rendered by the resource's serializer
    # (its fields alone, no isbn), as before
    assert valued.status_code == 200, valued.content
    assert [sorted(row) for row in valued.json()["data"]] == [["id", "title"]] * 5


class CountingBookResource(Resource):
    """Actions answering no book: a count, a dict, nothing, an empty list or queryset, the
    names of authors. Its
    ``get_queryset`` asks the database something first, as a project's may (which rows a
    caller sees can depend on a row), so each time it is built shows in the SQL."""

    model = Book
    name = "counting-books"
    serializer_class = ReviewedBookSerializer
    permissions = PUBLIC

    def get_queryset(self, request):
        Author.objects.filter(name="get_queryset was built").exists()
        return super().get_queryset(request)

    @action(permissions=P.allow_public())
    def count(self, request, instance, data):
        return Book.objects.count()

    @action(permissions=P.allow_public())
    def summary(self, request, instance, data):
        return {"title": instance.title}

    @action(permissions=P.allow_public())
    def nothing(self, request, instance, data):
        return None

    @action(permissions=P.allow_public())
    def none_of_them(self, request, instance, data):
        return list(Book.objects.none())

    @action(permissions=P.allow_public())
    def empty_queryset(self, request, instance, data):
        return Book.objects.filter(title="no such title")

    @action(permissions=P.allow_public())
    def authors(self, request, instance, data):
        return {"authors": list(Author.objects.values_list("name", flat=True))}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["count", "summary", "nothing", "none_of_them", "empty_queryset", "authors"]
)
def test_an_action_answering_no_row_builds_no_queryset_after_its_handler(settings, name):
    """The rows an action answers have their relations read again after the handler
    (62c8634): an action answering none of the resource's rows (a count, a dict, None, an
    empty list or queryset) built the view's queryset after its handler all the same, for nothing to
    load; a project's ``get_queryset`` ran twice (9ce29a0). It is built once, by the read
    of the row."""
    site = ResourceSite(name="counting-site")
    site.register(CountingBookResource)
    api = client_for(None)
    book = BookFactory(title="Dune", author=AuthorFactory(name="Frank"))
    try:
        with site_mounted(settings, "cb", site), CaptureQueriesContext(connection) as queries:
            path = f"/cb/counting-books/{book.pk}/action/"
            acted = api.post(path, {"action": name}, format="json")
    finally:
        _all_sites.remove(site)
    assert acted.status_code == 200, acted.content
    built = [q for q in queries.captured_queries if "get_queryset was built" in q["sql"]]
    assert len(built) == 1, [q["sql"] for q in queries.captured_queries]
