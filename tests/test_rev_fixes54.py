"""rev-fixes54: the preset contract from a plugin author's side — project presets that
narrow rows through a join, that AND with each other, that refuse from each hook, and that
force a value the caller may not write."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import fields as rf54_fields
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from django_arc.presets.base import Preset
from django_arc.sites import _all_sites
from tests.factories import OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.test_rev_pgfields import (
    _rev_pgfields_member,
    rev_pgfields_needs_postgres,
    rev_pgfields_site,
)
from tests.testapp.models import Author, Book, Review, Specimen


@contextmanager
def rf54_site(name, *resources):
    """A site with ``resources``, removed afterwards."""
    site = ResourceSite(name=name)
    try:
        for resource in resources:
            site.register(resource)
        yield site
    finally:
        _all_sites.remove(site)


# -- a preset narrowing rows through a join, and the query cache ----------------------------


class Rf54PublishedAuthorsQueryset(Preset):
    """A project's preset narrowing books to those whose author's name starts with "pub",
    through ``filter_queryset`` (the hook for what a ``Q`` cannot say; here a join)."""

    name = "rf54_published_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.filter(author__name__startswith="pub")


class Rf54JoinedCachedBookResource(Resource):
    model = Book
    name = "rf54-joined-cached-books"
    fields = ["id", "title"]
    presets = [Rf54PublishedAuthorsQueryset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_filter_queryset_through_a_join_never_serves_a_row_it_now_hides(settings):
    """A preset's ``filter_queryset`` joining another model (``author__name``) decides which
    rows a caller may see by that model's rows: an author renamed out of the condition must
    take their books out of the next answer, list and get, instead of a HIT of the former
    answer (the cache watched the presets' ``row_filter`` only)."""
    author = Author.objects.create(name="pub-ann")
    book = Book.objects.create(title="Dune", isbn="rf54-1", author=author)
    anon = client_for(None)
    url = "/rf54c/rf54-joined-cached-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-joined-cached", Rf54JoinedCachedBookResource) as site,
        site_mounted(settings, "rf54c", site),
    ):
        for path in (url, f"{url}{book.pk}/"):
            assert anon.get(path).status_code == 200
            anon.get(path)
        author.name = "hidden-ann"
        author.save()
        listed = anon.get(url)
        assert listed.status_code == 200 and listed.json()["docs"] == [], listed.content
        assert anon.get(f"{url}{book.pk}/").status_code == 404


class Rf54OwnColumnQueryset(Preset):
    """A preset narrowing by the resource's own column only: nothing else to watch."""

    name = "rf54_own_column_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.exclude(title="withdrawn")


class Rf54OwnColumnCachedBookResource(Resource):
    model = Book
    name = "rf54-own-column-cached-books"
    fields = ["id", "title"]
    presets = [Rf54OwnColumnQueryset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class Rf54AuthorSearch(Preset):
    """A preset answering ``?search=`` through a join (the author's name)."""

    name = "rf54_author_search"

    def search(self, view, queryset, term):
        return queryset.filter(author__name__icontains=term)


class Rf54AuthorSearchedBookResource(Resource):
    model = Book
    name = "rf54-author-searched-books"
    fields = ["id", "title"]
    presets = [Rf54AuthorSearch()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_narrowing_by_its_own_columns_is_still_cached(settings):
    """The reads a preset's ``filter_queryset`` adds are asked, not held against it: one
    that reads the resource's own table only is a HIT as before, and a write to its rows
    retires the entry."""
    author = Author.objects.create(name="ann")
    book = Book.objects.create(title="Dune", isbn="rf54-2", author=author)
    anon = client_for(None)
    url = "/rf54o/rf54-own-column-cached-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-own-column-cached", Rf54OwnColumnCachedBookResource) as site,
        site_mounted(settings, "rf54o", site),
    ):
        for path in (url, f"{url}{book.pk}/"):
            assert anon.get(path)["X-Cache"] == "MISS"
            assert anon.get(path)["X-Cache"] == "HIT"
        book.title = "withdrawn"
        book.save()
        listed = anon.get(url)
        assert listed["X-Cache"] == "MISS" and listed.json()["docs"] == [], listed.content
        assert anon.get(f"{url}{book.pk}/").status_code == 404


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_search_through_a_join_follows_the_joined_row(settings):
    """A preset's ``search`` matching the author's name: an author renamed changes which
    books a search finds, and no write to Book says so. The searched answer was a HIT of
    the former match; it is answered uncached now, while a list without ``?search=`` (which
    reads Book only) is still cached."""
    author = Author.objects.create(name="herbert")
    Book.objects.create(title="Dune", isbn="rf54-3", author=author)
    anon = client_for(None)
    url = "/rf54s/rf54-author-searched-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-author-searched", Rf54AuthorSearchedBookResource) as site,
        site_mounted(settings, "rf54s", site),
    ):
        assert [d["title"] for d in anon.get(f"{url}?search=herb").json()["docs"]] == ["Dune"]
        anon.get(f"{url}?search=herb")
        anon.get(url)
        assert anon.get(url)["X-Cache"] == "HIT"
        author.name = "asimov"
        author.save()
        searched = anon.get(f"{url}?search=herb")
        assert searched.status_code == 200 and searched.json()["docs"] == [], searched.content


class Rf54RawSqlQueryset(Preset):
    """A preset narrowing with SQL of its own: what it reads cannot be told."""

    name = "rf54_raw_sql_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.extra(where=["testapp_book.pages > 0"])  # noqa: S610 - fixed SQL


class Rf54RawSqlCachedBookResource(Resource):
    model = Book
    name = "rf54-raw-sql-cached-books"
    fields = ["id", "title"]
    presets = [Rf54RawSqlQueryset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf54_a_preset_narrowing_with_sql_of_its_own_is_never_stored(settings):
    """``extra(where=...)`` may read any table: answered, never stored."""
    author = Author.objects.create(name="ann")
    Book.objects.create(title="Dune", isbn="rf54-4", author=author)
    anon = client_for(None)
    url = "/rf54r/rf54-raw-sql-cached-books/"
    with (
        query_cache_on_redis(),
        rf54_site("rf54-raw-sql-cached", Rf54RawSqlCachedBookResource) as site,
        site_mounted(settings, "rf54r", site),
    ):
        for _ in range(2):
            listed = anon.get(url)
            assert listed["X-Cache"] == "MISS" and len(listed.json()["docs"]) == 1


# -- two project presets narrowing by a join and by a column: ANDed on every path -----------


class Rf54PublishedAuthorsRows(Preset):
    """Books whose author's name starts with "pub" (a ``row_filter`` through a join)."""

    name = "rf54_published_rows"

    def row_filter(self, view):
        return Q(author__name__startswith="pub")


class Rf54LongBooksRows(Preset):
    """Books of 50 pages or more (or one title no book has): an ``OR`` inside one preset's
    condition stays inside it, ANDed with the other presets'."""

    name = "rf54_long_rows"

    def row_filter(self, view):
        return Q(pages__gte=50) | Q(title="rf54-never")


class Rf54ReviewedBooksQueryset(Preset):
    """Books with a review saying "ok" (``filter_queryset`` through a multi-valued relation,
    its own ``filter()`` and ``distinct()``, as the contract advises)."""

    name = "rf54_reviewed_queryset"

    def filter_queryset(self, view, queryset):
        return queryset.filter(reviews__body="ok").distinct()


class Rf54NarrowedBookResource(Resource):
    model = Book
    name = "rf54-narrowed-books"
    fields = ["id", "title", "pages", "author"]
    filter_fields = {"title": ["eq"], "pages": ["gte"]}
    presets = [
        Rf54PublishedAuthorsRows(),
        Rf54LongBooksRows(),
        Rf54ReviewedBooksQueryset(),
        presets.Bulk(),
    ]
    permissions = {
        k: P.allow_public() for k in ("list", "get", "create", "update", "delete", "titles")
    }
    action_permissions = P.allow_public()

    @action
    def retitle(self, request, instance, data):
        instance.title = "retitled"
        instance.save(update_fields=["title"])
        return instance

    @route("GET", "titles")
    def titles(self, request, view):
        return sorted(view.get_queryset().values_list("title", flat=True))


@pytest.fixture
def rf54_narrowed(settings, db):
    """One book every preset lets through, and one that each preset alone hides."""
    pub, other = Author.objects.create(name="pub-ann"), Author.objects.create(name="ann")

    def book(title, author, pages, review="ok"):
        row = Book.objects.create(title=title, isbn=title, author=author, pages=pages)
        for body in (review, review):  # twice: the join must not repeat the row
            Review.objects.create(book=row, body=body)
        return row

    rows = {
        "shown": book("shown", pub, 100),
        "by_author": book("by-author", other, 100),
        "by_pages": book("by-pages", pub, 10),
        "by_review": book("by-review", pub, 100, review="bad"),
    }
    with (
        rf54_site("rf54-narrowed", Rf54NarrowedBookResource) as site,
        site_mounted(settings, "rf54n", site),
    ):
        yield rows


def test_rf54_project_presets_narrowing_by_joins_and_columns_and_on_every_path(rf54_narrowed):
    """Three project presets each hiding one book (a ``row_filter`` through a join, a
    ``row_filter`` holding an ``OR``, a ``filter_queryset`` through a multi-valued relation):
    every path that reads rows sees their AND — the list and its count, a get, an update, a
    delete, an action, a ``@route`` reading ``view.get_queryset()``, bulk updates by id and
    by filter, bulk deletes — and no row twice."""
    rows = rf54_narrowed
    api = client_for(None)
    url = "/rf54n/rf54-narrowed-books/"
    listed = api.get(url).json()
    assert [d["title"] for d in listed["docs"]] == ["shown"] and listed["total"] == 1
    assert api.get(f"{url}titles/").json()["data"] == ["shown"]
    filtered = api.get(f"{url}?pages[gte]=1")
    assert filtered.status_code == 200 and filtered.json()["total"] == 1, filtered.content
    for name in ("by_author", "by_pages", "by_review"):
        pk = rows[name].pk
        assert api.get(f"{url}{pk}/").status_code == 404, name
        assert api.patch(f"{url}{pk}/", {"title": "x"}, format="json").status_code == 404
        assert api.delete(f"{url}{pk}/").status_code == 404
        answer = api.post(f"{url}{pk}/action/", {"action": "retitle"}, format="json")
        assert answer.status_code == 404, answer.content
        answer = api.patch(f"{url}bulk/", {"items": [{"id": pk, "title": "x"}]}, format="json")
        assert answer.status_code == 400, answer.content
        assert answer.json()["details"]["items"] == {"0": {"id": ["Not found."]}}
        answer = api.delete(f"{url}bulk/", {"ids": [pk]}, format="json")
        assert answer.status_code == 400, answer.content
    answer = api.patch(
        f"{url}bulk/", {"filter": {"pages[gte]": 1}, "data": {"title": "all"}}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["data"]["ids"] == [rows["shown"].pk]
    assert sorted(Book.objects.values_list("title", flat=True)) == [
        "all",
        "by-author",
        "by-pages",
        "by-review",
    ]
    shown = api.post(f"{url}{rows['shown'].pk}/action/", {"action": "retitle"}, format="json")
    assert shown.status_code == 200 and shown.json()["data"]["title"] == "retitled"


# -- a row condition through a multi-valued relation ----------------------------------------


class Rf54ReviewedRows(Preset):
    """Books with a review saying "ok": a ``row_filter`` through a reverse foreign key, which
    the contract allows (two conditions on it must hold for the same review)."""

    name = "rf54_reviewed_rows"

    def row_filter(self, view):
        return Q(reviews__body="ok")


class Rf54ReviewedRowsBookResource(Resource):
    model = Book
    name = "rf54-reviewed-rows-books"
    fields = ["id", "title"]
    filter_fields = {"title": ["eq"]}
    presets = [Rf54ReviewedRows(), presets.Bulk()]
    permissions = {k: P.allow_public() for k in ("list", "get", "update", "delete")}


@pytest.mark.django_db
def test_rf54_a_row_filter_through_a_multi_valued_relation_lists_and_finds_each_row_once(
    settings,
):
    """A book with two "ok" reviews matched the preset's condition twice: the list showed it
    twice (``total`` 2), its GET, PATCH and DELETE answered 404 (the lookup found two rows),
    and a bulk update by filter wrote it twice (``ids`` [1, 1], two events). Each row the
    condition lets through is one row, wherever it is read."""
    author = Author.objects.create(name="ann")
    book = Book.objects.create(title="Dune", isbn="rf54-5", author=author)
    hidden = Book.objects.create(title="Emma", isbn="rf54-6", author=author)
    for body in ("ok", "ok", "bad"):
        Review.objects.create(book=book, body=body)
    Review.objects.create(book=hidden, body="bad")
    api = client_for(None)
    url = "/rf54m/rf54-reviewed-rows-books/"
    with (
        rf54_site("rf54-reviewed-rows", Rf54ReviewedRowsBookResource) as site,
        site_mounted(settings, "rf54m", site),
    ):
        listed = api.get(url).json()
        assert [d["title"] for d in listed["docs"]] == ["Dune"] and listed["total"] == 1
        assert api.get(f"{url}{book.pk}/").status_code == 200
        assert api.get(f"{url}{hidden.pk}/").status_code == 404
        answer = api.patch(f"{url}{book.pk}/", {"title": "Dune II"}, format="json")
        assert answer.status_code == 200, answer.content
        events = OutboxEvent.objects.count()
        answer = api.patch(
            f"{url}bulk/",
            {"filter": {"title": "Dune II"}, "data": {"title": "Dune III"}},
            format="json",
        )
        assert answer.status_code == 200, answer.content
        assert answer.json()["data"] == {"updated": 1, "ids": [book.pk]}
        assert OutboxEvent.objects.count() == events + 1
        assert api.delete(f"{url}{book.pk}/").status_code == 200
        assert not Book.objects.filter(pk=book.pk).exists()


# -- a preset forcing a value the caller may not write -------------------------------------


class Rf54StampPages(Preset):
    """Forces ``pages`` on every write, a field no caller may write (``read_only()``)."""

    name = "rf54_stamp_pages"
    needs_transaction = False

    def write_values(self, view, instance=None):
        return {"pages": 7}


class Rf54StampedBookResource(Resource):
    model = Book
    name = "rf54-stamped-books"
    fields = ["id", "title", "isbn", "author", "pages"]
    presets = [Rf54StampPages()]
    field_permissions = {"pages": rf54_fields.read_only()}
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update")}


@pytest.mark.django_db
def test_rf54_the_field_guard_judges_the_body_never_a_presets_forced_value(settings):
    """Decided (docs/decisions.md, rev-fixes54): the field-write guard judges what the
    caller sent, before any hook; a preset's ``write_values`` is the server's and is stored
    whatever the caller's field rules say (as ``MultiTenant``'s tenant and ``OwnedBy``'s
    owner are). The caller sending the field is refused, nothing written."""
    author = Author.objects.create(name="ann")
    api = client_for(None)
    url = "/rf54w/rf54-stamped-books/"
    with (
        rf54_site("rf54-stamped", Rf54StampedBookResource) as site,
        site_mounted(settings, "rf54w", site),
    ):
        body = {"title": "Dune", "isbn": "rf54-7", "author": author.pk}
        created = api.post(url, body, format="json")
        assert created.status_code == 201, created.content
        assert created.json()["data"]["pages"] == 7
        pk = created.json()["data"]["id"]
        Book.objects.filter(pk=pk).update(pages=300)
        updated = api.patch(f"{url}{pk}/", {"title": "Dune II"}, format="json")
        assert updated.status_code == 200 and updated.json()["data"]["pages"] == 7
        refused = api.patch(f"{url}{pk}/", {"title": "Dune III", "pages": 7}, format="json")
        assert refused.status_code == 403, refused.content
        assert refused.json()["code"] == "FIELD_WRITE_DENIED"
        assert Book.objects.get(pk=pk).title == "Dune II"


# -- a preset refusing from each hook ------------------------------------------------------

RF54_REFUSALS = {
    "permission denied": lambda: DjangoPermissionDenied("not now"),
    "validation error": lambda: DjangoValidationError({"title": ["not this title"]}),
    "http 404": lambda: Http404("gone"),
}
RF54_HOOKS = [
    "check_request",
    "row_filter",
    "filter_queryset",
    "check_object",
    "related_queryset",
    "write_values",
    "perform_delete",
    "after_write",
]


class Rf54Refuser(Preset):
    """Raises the refusal a test names from the hook it names; every hook a no-op else."""

    name = "rf54_refuser"
    hook: str | None = None
    refusal: str | None = None

    def _refuse(self, hook):
        if self.hook == hook:
            raise RF54_REFUSALS[self.refusal]()

    def check_request(self, view):
        self._refuse("check_request")

    def row_filter(self, view):
        self._refuse("row_filter")

    def filter_queryset(self, view, queryset):
        self._refuse("filter_queryset")
        return queryset

    def check_object(self, view, obj):
        self._refuse("check_object")

    def related_queryset(self, view, queryset):
        self._refuse("related_queryset")
        return queryset

    def write_values(self, view, instance=None):
        self._refuse("write_values")
        return {}

    def perform_delete(self, view, instance):
        self._refuse("perform_delete")
        return False

    def after_write(self, view, verb, instance, before, after):
        self._refuse("after_write")


rf54_refuser = Rf54Refuser()


class Rf54RefusedBookResource(Resource):
    model = Book
    name = "rf54-refused-books"
    fields = ["id", "title", "isbn", "author"]
    presets = [presets.Audited(), rf54_refuser, presets.Bulk()]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update", "delete")}


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", list(RF54_REFUSALS))
@pytest.mark.parametrize("hook", RF54_HOOKS)
def test_rf54_a_refusal_from_any_preset_hook_is_a_4xx_envelope_and_writes_nothing(
    settings, hook, refusal
):
    """Django's ``PermissionDenied``, ``ValidationError`` and ``Http404`` raised from each
    hook a write passes through: the answer is a 4xx in the error envelope (never a 500),
    no row changed, no event, no audit entry (``Audited`` listed before the refusing
    preset)."""
    author = Author.objects.create(name="ann")
    book = Book.objects.create(title="Dune", isbn="rf54-8", author=author)
    api = client_for(None)
    url = "/rf54x/rf54-refused-books/"
    requests = [
        ("post", url, {"title": "Emma", "isbn": "rf54-9", "author": author.pk}),
        ("patch", f"{url}{book.pk}/", {"title": "Dune II", "author": author.pk}),
        ("delete", f"{url}{book.pk}/", None),
        (
            "post",
            f"{url}bulk/",
            {"items": [{"title": "Emma", "isbn": "rf54-9", "author": author.pk}]},
        ),
        ("patch", f"{url}bulk/", {"items": [{"id": book.pk, "title": "Dune II"}]}),
        ("delete", f"{url}bulk/", {"ids": [book.pk]}),
    ]

    def state():
        return (
            list(Book.objects.order_by("pk").values_list("pk", "title")),
            OutboxEvent.objects.count(),
            AuditLog.objects.count(),
        )

    with (
        rf54_site("rf54-refused", Rf54RefusedBookResource) as site,
        site_mounted(settings, "rf54x", site),
    ):
        rf54_refuser.hook, rf54_refuser.refusal = hook, refusal
        try:
            refused = 0
            for method, path, body in requests:
                before = state()
                answer = getattr(api, method)(path, body, format="json")
                if answer.status_code < 400:
                    continue  # the hook is not on this request's way (a create's object)
                refused += 1
                assert answer.status_code < 500, (method, path, answer.content)
                error = answer.json()
                assert error["success"] is False and error["code"], error
                assert state() == before, (method, path)
        finally:
            rf54_refuser.hook = None
    assert refused >= 3


# -- f9dbc86: one parse_constant for query filters and form JSON ----------------------------


@pytest.fixture
def rf54_pg_api(settings, db):
    """rev-pgfields' specimens (PostgreSQL's structured fields) and a member's client."""
    org = OrganizationFactory()
    with site_mounted(settings, "pg", rev_pgfields_site):
        yield _rev_pgfields_member(org)


@rev_pgfields_needs_postgres
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    "param, template",
    [
        ("numbers", "[{}]"),
        ("numbers[in]", "[{}]"),
        ("grid", "[[{}]]"),
        ("attrs", '{{"k": {}}}'),
        ("span", '{{"lower": {}}}'),
        ("span[gt]", '{{"upper": {}}}'),
    ],
)
def test_rf54_a_json_constant_in_a_structured_filter_is_a_400_naming_it(
    rf54_pg_api, param, template, constant
):
    """``NaN`` and the infinities are no JSON (``query.refuse_json_constant``, shared with
    the form JSON fields since f9dbc86): a filter value holding one is the 400 naming its
    parameter, on array, hstore and range filters."""
    api = rf54_pg_api
    body = assert_error(
        api.get("/pg/specimens/", {param: template.format(constant)}), 400, "INVALID_QUERY"
    )
    assert param in body["details"], body


@rev_pgfields_needs_postgres
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", '{"a": NaN}'])
def test_rf54_a_json_constant_in_a_form_json_field_is_a_400_naming_it(rf54_pg_api, constant):
    """A form body's JSON field is parsed as strictly as a JSON body: the 400 names the
    field, nothing written."""
    api = rf54_pg_api
    answer = api.post("/pg/specimens/", {"name": "n", "data": constant}, format="multipart")
    body = assert_error(answer, 400, "VALIDATION_ERROR")
    assert "data" in body["details"], body
    assert not Specimen.objects.exists()
