"""Query-cache invalidation (SPEC §11) by writes that reach a cached model's rows without
naming its class: which resources serve a model as sites change, saves and deletes through a
proxy or a multi-table-inheritance child, and deletes of a row a cached model points at,
which Django answers with an UPDATE (``SET_NULL``) or a cascade.

Fixtures and the cached/uncached product resources come from ``test_query_cache``.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import connection, models
from django.db.models import Q
from django.db.models.deletion import Collector
from django.test.utils import isolate_apps

from django_arc import Resource, ResourceSite
from django_arc import permissions as P
from django_arc.presets.base import Preset
from django_arc.querycache import invalidate
from django_arc.querycache.invalidation import _models_read, _path_reads
from django_arc.sites import _all_sites
from shop.models import Membership, Organization, Product
from tests import test_query_cache
from tests.factories import (
    AuthorFactory,
    BookFactory,
    MembershipFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
)
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL
from tests.test_query_cache import CACHED, get, same_as_uncached
from tests.testapp.models import Article, Author, Book, Review

# test_query_cache's fixtures: Redis under a prefix of the test's own (autouse), and the shop
redis_cache = test_query_cache.redis_cache
shop = test_query_cache.shop

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    # bumps happen on commit: the test's writes must really commit
    pytest.mark.django_db(transaction=True),
]


def hit_then(client, path, write):
    """Read ``path`` until it is a HIT, run ``write``, and return the next read."""
    get(client, path)
    assert get(client, path)["X-Cache"] == "HIT"
    write()
    return get(client, path)


@contextmanager
def registered_site(name, *resources):
    """A site with ``resources``, removed afterwards (as ``test_fail_closed_checks`` does)."""
    site = ResourceSite(name=name)
    try:
        for resource in resources:
            site.register(resource)
        yield site
    finally:
        _all_sites.remove(site)


class CachedBookResource(Resource):
    model = Book
    name = "cached-books"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class CachedArticleResource(Resource):
    """Articles point at their owner (``SET_NULL``) and organization (``CASCADE``)."""

    model = Article
    name = "cached-articles"
    fields = ["id", "owner", "organization", "slug", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


# -- the resources serving a model -----------------------------------------------------------------


def test_a_resource_registered_in_place_of_another_is_invalidated(settings):
    """Which resources serve a model is recomputed when the registered resources change, not
    only when their number does."""
    anon = client_for(None)
    with registered_site("swapped-test", CachedBookResource) as site:
        BookFactory()  # a write: the resources serving each model are looked up
        site.unregister("cached-books")
        site.register(CachedArticleResource)
        article = Article.objects.create(slug="a", title="A")
        with site_mounted(settings, "sw", site):

            def rename():
                article.title = "B"
                article.save()

            after = hit_then(anon, "/sw/cached-articles/", rename)
    assert after["X-Cache"] == "MISS"
    assert [d["title"] for d in after.json()["docs"]] == ["B"]


# -- proxies and multi-table children --------------------------------------------------------------


def quiet_product() -> type[Product]:
    """A proxy of ``Product`` defined now, after the product resources are watched (as a
    project's admin module may define one); call it inside ``isolate_apps``."""

    class QuietProduct(Product):
        class Meta:
            proxy = True
            app_label = "testapp"

    return QuietProduct


def test_a_save_through_a_proxy_model_invalidates(shop):
    """Django sends a proxy's saves with the proxy as sender."""
    with isolate_apps("tests.testapp"):
        QuietProduct = quiet_product()  # noqa: N806 - a model class

        def rename():
            row = QuietProduct.objects.filter(organization=shop["a"]).order_by("pk").first()
            row.name = "Via proxy"
            row.save()

        after = hit_then(shop["editor"], CACHED, rename)
    assert after["X-Cache"] == "MISS"
    assert "Via proxy" in {d["name"] for d in after.json()["docs"]}
    same_as_uncached(shop["editor"])


def test_a_delete_through_a_proxy_model_invalidates(shop):
    with isolate_apps("tests.testapp"):
        QuietProduct = quiet_product()  # noqa: N806 - a model class

        def delete():
            QuietProduct.objects.filter(organization=shop["a"]).order_by("pk").first().delete()

        after = hit_then(shop["editor"], CACHED, delete)
    assert after["X-Cache"] == "MISS"
    assert after.json()["total"] == 5
    same_as_uncached(shop["editor"])


@pytest.fixture
def bundle(transactional_db):
    """A multi-table child of the cached ``Product``, defined after its resources are watched,
    with its table for this test only: saving one writes a ``shop_product`` row without a
    signal for ``Product``. Isolated, so ``Product`` itself never learns of it (a delete of
    a product elsewhere must not look for this table)."""
    with isolate_apps("tests.testapp"):

        class Bundle(Product):
            contents = models.CharField(max_length=100, default="")

            class Meta:
                app_label = "testapp"

    with connection.schema_editor() as editor:
        editor.create_model(Bundle)
    yield Bundle
    with connection.schema_editor() as editor:
        editor.delete_model(Bundle)


def test_a_save_of_a_multi_table_child_invalidates_its_parents_resources(shop, bundle):
    editor = shop["editor"]
    fields = {"organization": shop["a"], "sku": "BUNDLE-1", "price": 7}
    after = hit_then(editor, CACHED, lambda: bundle.objects.create(name="Bundle", **fields))
    assert after["X-Cache"] == "MISS"
    assert "Bundle" in {d["name"] for d in after.json()["docs"]}

    def rename():
        row = bundle.objects.get()
        row.name = "Bundle XL"
        row.save()

    after = hit_then(editor, CACHED, rename)
    assert after["X-Cache"] == "MISS"
    assert "Bundle XL" in {d["name"] for d in after.json()["docs"]}
    same_as_uncached(editor)


def test_a_write_to_a_parents_row_invalidates_its_multi_table_childrens_resources(
    shop, bundle, settings
):
    """A child's answers render the fields it inherits, which live in its parent's row: a
    write to that row through the parent (its resource's routes, ``save()``, or
    ``invalidate()`` of the parent model after an ``update()``) is a write to the child's
    answers, with no signal of the child's. (Lists only: a get's hit unpickles its row,
    which a model of ``isolate_apps`` cannot be.)"""

    class CachedBundleResource(Resource):
        model = bundle
        name = "cached-bundles"
        fields = ["id", "name", "contents"]
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    row = bundle.objects.create(organization=shop["a"], sku="BUNDLE-1", price=7, name="Kit")
    anon = client_for(None)
    bundles = "/cb/cached-bundles/"
    with (
        registered_site("cached-bundles-test", CachedBundleResource) as site,
        site_mounted(settings, "cb", site),
    ):

        def saved_as_product():
            product = Product.objects.get(pk=row.pk)
            product.name = "Kit XL"
            product.save()

        def patched_as_product():
            url = f"{CACHED}{row.pk}/"
            assert shop["admin"].patch(url, {"name": "Kit XXL"}, format="json").status_code == 200

        def updated_as_product():
            Product.objects.filter(pk=row.pk).update(name="Kit S")
            invalidate(Product)

        for write, name in (
            (saved_as_product, "Kit XL"),
            (patched_as_product, "Kit XXL"),
            (updated_as_product, "Kit S"),
        ):
            after = hit_then(anon, bundles, write)
            assert after["X-Cache"] == "MISS", name
            assert [d["name"] for d in after.json()["docs"]] == [name]


def test_a_proxy_defined_before_its_model_is_cached_invalidates_too(settings):
    """The resource is registered after the proxy exists: watching finds the proxies and
    children already defined, not only those defined later."""
    with isolate_apps("tests.testapp"):

        class ShelvedBook(Book):
            class Meta:
                proxy = True
                app_label = "testapp"

        book = BookFactory(title="Dune")
        anon = client_for(None)
        with (
            registered_site("book-proxy-test", CachedBookResource) as site,
            site_mounted(settings, "bp", site),
        ):

            def rename():
                shelved = ShelvedBook.objects.get(pk=book.pk)
                shelved.title = "Dune Messiah"
                shelved.save()

            after = hit_then(anon, "/bp/cached-books/", rename)
    assert after["X-Cache"] == "MISS"
    assert [d["title"] for d in after.json()["docs"]] == ["Dune Messiah"]


# -- deletes of a row a cached model points at -----------------------------------------------------


ARTICLES = "/ca/cached-articles/"


@pytest.fixture
def articles(settings):
    """An anonymous client of cached articles, on a site of this test's own (gone after it,
    so the project's ``check`` and other tests never see it)."""
    with registered_site("cached-articles-test", CachedArticleResource) as site:
        with site_mounted(settings, "ca", site):
            yield client_for(None)


def test_a_delete_that_sets_a_cached_rows_foreign_key_to_null_invalidates(articles):
    owner = UserFactory()
    Article.objects.create(owner=owner, slug="a", title="A")
    assert get(articles, ARTICLES).json()["docs"][0]["owner"] == owner.pk
    after = hit_then(articles, ARTICLES, owner.delete)  # Article.owner: SET_NULL, an UPDATE
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"][0]["owner"] is None


def test_a_delete_through_a_proxy_of_the_referenced_model_invalidates(articles):
    with isolate_apps("tests.testapp"):

        class Staff(User):
            class Meta:
                proxy = True
                app_label = "testapp"

        owner = UserFactory()
        Article.objects.create(owner=owner, slug="a", title="A")
        after = hit_then(articles, ARTICLES, Staff.objects.get(pk=owner.pk).delete)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"][0]["owner"] is None


def test_a_cascading_delete_invalidates(articles):
    org = Organization.objects.create(name="Gone", slug="gone")
    Article.objects.create(organization=org, slug="a", title="A")
    Article.objects.create(slug="b", title="B")
    after = hit_then(articles, ARTICLES, org.delete)  # Article.organization: CASCADE
    assert after["X-Cache"] == "MISS"
    assert [d["title"] for d in after.json()["docs"]] == ["B"]


def test_models_no_cached_answer_depends_on_keep_fast_deletes():
    """Signals are connected per model: deleting an unrelated model's rows stays one
    ``DELETE`` without fetching them. Django's ``Session``: no relation points at it and no
    resource serves it. (It was ``Review``, then ``Export``: a test turning
    ``ARC["CACHE"]["ENABLED"]`` on watches every registered resource left at
    ``cache = None`` for the rest of the session, as it should, so any served model may be
    watched by then.)"""
    BookFactory(author=AuthorFactory())
    collector = Collector(using="default")
    assert collector.can_fast_delete(Session.objects.all())


# -- writes to the rows of another model an answer reads ---------------------------------------


class CachedAuthorResource(Resource):
    """Authors render the ids of their books: a reverse relation, whose rows are Book's."""

    model = Author
    name = "cached-authors"
    fields = ["id", "name", "books"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


class CachedBookByAuthorResource(Resource):
    """Books filtered and sorted by their author's name: a path that joins Author's rows."""

    model = Book
    name = "cached-books-by-author"
    fields = ["id", "title"]
    filter_fields = {"author__name": ["eq"]}
    sort_fields = ["author__name"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.fixture
def readers(settings):
    """An anonymous client of the two resources above, on a site of this test's own."""
    site_resources = (CachedAuthorResource, CachedBookByAuthorResource)
    with registered_site("cached-readers-test", *site_resources) as site:
        with site_mounted(settings, "cr", site):
            yield client_for(None)


def test_a_write_to_the_rows_of_a_rendered_reverse_relation_invalidates(readers):
    author = AuthorFactory(name="Frank")
    first = BookFactory(author=author)
    authors = "/cr/cached-authors/"
    assert get(readers, authors).json()["docs"][0]["books"] == [first.pk]
    after = hit_then(readers, authors, lambda: BookFactory(author=author))
    assert after["X-Cache"] == "MISS"
    assert len(after.json()["docs"][0]["books"]) == 2

    def moved():
        Book.objects.filter(pk=first.pk).update(author=AuthorFactory())
        invalidate(Book)  # the documented helper, for a write no signal reports

    after = hit_then(readers, authors, moved)
    assert after["X-Cache"] == "MISS"
    assert first.pk not in after.json()["docs"][0]["books"]


def test_a_write_to_a_model_a_filter_path_joins_invalidates(readers):
    author = AuthorFactory(name="Frank")
    BookFactory(author=author, title="Dune")
    books = "/cr/cached-books-by-author/"
    query = "?author__name=Frank"
    assert [d["title"] for d in get(readers, books, query).json()["docs"]] == ["Dune"]

    def rename():
        author.name = "Herbert"
        author.save()

    after = hit_then(readers, f"{books}{query}", rename)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []


class CachedBookByAuthorIdResource(Resource):
    """Books filtered and sorted by their author's id: the book's own column, no join."""

    model = Book
    name = "cached-books-by-author-id"
    fields = ["id", "title", "author"]
    filter_fields = {"author__id": ["eq"]}
    sort_fields = ["author__id"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


def test_a_path_to_a_foreign_keys_own_target_reads_no_other_model():
    """``author__id`` compares and sorts by the book's own ``author_id`` column (Django joins
    nothing): no write to an author changes those answers, so Author is not among the
    models whose writes retire them (which are connected when the resource is cached, and
    retire every cached resource over Book then); a path that joins, ``author__name``, reads
    Author. (A condition's ``organization__pk`` is counted the same way:
    ``test_a_permission_filtering_through_another_models_rows_is_never_served_stale``.)"""
    assert Author not in _models_read(CachedBookByAuthorIdResource())
    assert Author in _models_read(CachedBookByAuthorResource())


def test_a_path_read_before_the_models_are_ready_is_not_remembered(monkeypatch):
    """A resource registered before autodiscovery is watched when only forward fields are
    known: ``organization__memberships__role`` then reads as joining nothing. Remembered so,
    a permission filtering by the same path would later be taken for a column condition and
    its answers stored, and a revoked membership served a HIT."""
    path = "organization__memberships__role"
    monkeypatch.setattr(apps, "models_ready", False)
    assert _path_reads(Product, path) == frozenset()
    monkeypatch.undo()
    assert _path_reads(Product, path) == {Organization, Membership}


@pytest.fixture
def labels(settings):
    """A many-to-many pair with their tables for this test only, isolated so that no other
    test's flush looks for them: rows that render the ids of their labels (the many-to-many
    table's rows), and labels filtered by the title of what they label (a path through the
    table). Yields the client, ``Label`` and ``Labelled``."""
    with isolate_apps("tests.testapp"):

        class Label(models.Model):
            name = models.CharField(max_length=50)

            class Meta:
                app_label = "testapp"

        class Labelled(models.Model):
            title = models.CharField(max_length=50)
            labels = models.ManyToManyField(Label, related_name="labelled")

            class Meta:
                app_label = "testapp"

    class CachedLabelledResource(Resource):
        model = Labelled
        name = "cached-labelled"
        fields = ["id", "title", "labels"]
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    class CachedLabelResource(Resource):
        model = Label
        name = "cached-labels"
        fields = ["id", "name"]
        filter_fields = {"labelled__title": ["eq"]}
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    with connection.schema_editor() as editor:
        editor.create_model(Label)
        editor.create_model(Labelled)
    try:
        site_resources = (CachedLabelledResource, CachedLabelResource)
        with registered_site("cached-labels-test", *site_resources) as site:
            with site_mounted(settings, "cl", site):
                yield client_for(None), Label, Labelled
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Labelled)
            editor.delete_model(Label)


def test_a_many_to_many_of_an_unmanaged_mirror_invalidates(labels):
    """An unmanaged model over a cached model's table (a reporting app's mirror) declaring
    its many-to-many over the same link table: ``mirror.labels.add(red)`` writes the rows
    a cached answer reads, and Django sends ``m2m_changed`` with the mirror's through model
    as sender, which nothing had connected (the mirror's own ``post_save`` was): the HIT
    stayed, without ``red``. Every model over a watched table gets ``m2m_changed`` too."""
    labels, Label, Labelled = labels  # noqa: N806 - model classes
    item = Labelled.objects.create(title="Dune")
    red, blue = Label.objects.create(name="red"), Label.objects.create(name="blue")
    link_table = Labelled._meta.get_field("labels").remote_field.through._meta.db_table
    registry = Label._meta.apps  # the fixture's isolated apps: defined after the watch

    class LabelledMirror(models.Model):
        title = models.CharField(max_length=50)
        labels = models.ManyToManyField(Label, through="MirrorLink", related_name="mirrored")

        class Meta:
            apps = registry
            app_label = "testapp"
            managed = False
            db_table = Labelled._meta.db_table

    class MirrorLink(models.Model):
        labelled = models.ForeignKey(
            LabelledMirror, on_delete=models.DO_NOTHING, db_column="labelled_id"
        )
        label = models.ForeignKey(Label, on_delete=models.DO_NOTHING, db_column="label_id")

        class Meta:
            apps = registry
            app_label = "testapp"
            managed = False
            db_table = link_table

    mirror = LabelledMirror.objects.get(pk=item.pk)
    listed = "/cl/cached-labelled/"
    for write, expected in (
        (lambda: mirror.labels.add(red), [red.pk]),
        (lambda: red.mirrored.add(mirror), [red.pk]),  # already there: nothing written
        (lambda: blue.mirrored.add(mirror), [red.pk, blue.pk]),
        (lambda: mirror.labels.remove(red), [blue.pk]),
        (lambda: mirror.labels.clear(), []),
    ):
        after = hit_then(labels, listed, write)
        assert after["X-Cache"] == "MISS"
        assert sorted(after.json()["docs"][0]["labels"]) == sorted(expected)


def test_many_to_many_writes_from_either_side_invalidate(labels):
    labels, Label, Labelled = labels  # noqa: N806 - model classes
    item = Labelled.objects.create(title="Dune")
    red, blue = Label.objects.create(name="red"), Label.objects.create(name="blue")
    listed, by_title = "/cl/cached-labelled/", "/cl/cached-labels/?labelled__title=Dune"

    def labels_of_item():
        return get(labels, listed).json()["docs"][0]["labels"]

    for write, expected in (
        (lambda: item.labels.add(red), [red.pk]),
        (lambda: blue.labelled.add(item), [red.pk, blue.pk]),
        (lambda: item.labels.remove(red), [blue.pk]),
        (blue.delete, []),  # the table's rows go with it, without m2m_changed
    ):
        after = hit_then(labels, listed, write)
        assert after["X-Cache"] == "MISS"
        assert sorted(labels_of_item()) == sorted(expected)
    green = Label.objects.create(name="green")
    after = hit_then(labels, by_title, lambda: item.labels.add(green))
    assert after["X-Cache"] == "MISS"
    assert [d["name"] for d in after.json()["docs"]] == ["green"]

    def rename():
        item.title = "Dune Messiah"
        item.save()

    after = hit_then(labels, by_title, rename)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"] == []


@pytest.fixture
def shelves(settings):
    """A reverse relation without a ``related_name``, for this test only (isolated): shelves
    render their volumes under the accessor Django gives them, ``volume_set``, which is not
    the name the query language (and ``_meta.get_field``) knows them by (``volume``).
    Yields the client and ``Volume``."""
    with isolate_apps("tests.testapp"):

        class Shelf(models.Model):
            name = models.CharField(max_length=50)

            class Meta:
                app_label = "testapp"

        class Volume(models.Model):
            title = models.CharField(max_length=50)
            shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE)

            class Meta:
                app_label = "testapp"

    class CachedShelfResource(Resource):
        model = Shelf
        name = "cached-shelves"
        fields = ["id", "name", "volume_set"]
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    with connection.schema_editor() as editor:
        editor.create_model(Shelf)
        editor.create_model(Volume)
    try:
        with registered_site("cached-shelves-test", CachedShelfResource) as site:
            with site_mounted(settings, "cs", site):
                yield client_for(None), Shelf, Volume
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Volume)
            editor.delete_model(Shelf)


def test_a_reverse_relation_rendered_under_its_default_accessor_invalidates(shelves):
    client, Shelf, Volume = shelves  # noqa: N806 - model classes
    shelf = Shelf.objects.create(name="Top")
    Volume.objects.create(title="Dune", shelf=shelf)
    url = "/cs/cached-shelves/"
    assert len(get(client, url).json()["docs"][0]["volume_set"]) == 1
    after = hit_then(client, url, lambda: Volume.objects.create(title="Emma", shelf=shelf))
    assert after["X-Cache"] == "MISS"
    assert len(after.json()["docs"][0]["volume_set"]) == 2


def test_a_reverse_relation_a_project_serializer_renders_by_name_invalidates(settings):
    """``fields`` unset: the project serializer's own fields are what is rendered, its
    ``books`` (a reverse relation, by its model name) as much as ``fields = [..., "books"]``
    would, and writes to Book's rows retire the answer likewise."""
    from rest_framework import serializers

    class AuthorSerializer(serializers.ModelSerializer):
        class Meta:
            model = Author
            fields = ["id", "name", "books"]

    class SerializedAuthorResource(Resource):
        model = Author
        name = "serialized-authors"
        serializer_class = AuthorSerializer
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    with registered_site("serialized-authors-test", SerializedAuthorResource) as site:
        with site_mounted(settings, "sa", site):
            client, url = client_for(None), "/sa/serialized-authors/"
            author = AuthorFactory(name="Frank")
            BookFactory(author=author)
            assert len(get(client, url).json()["docs"][0]["books"]) == 1
            after = hit_then(client, url, lambda: BookFactory(author=author))
    assert after["X-Cache"] == "MISS"
    assert len(after.json()["docs"][0]["books"]) == 2


def test_a_delete_that_nulls_the_keys_of_rows_an_answer_reads_invalidates(settings):
    """Shelves filtered by their items' box read the items' ``box`` column; deleting a box
    sets it to null (``SET_NULL``: one ``UPDATE`` of the items, no signal of theirs)."""
    with isolate_apps("tests.testapp"):

        class Box(models.Model):
            class Meta:
                app_label = "testapp"

        class Shelf(models.Model):
            name = models.CharField(max_length=20)

            class Meta:
                app_label = "testapp"

        class Item(models.Model):
            shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="items")
            box = models.ForeignKey(Box, on_delete=models.SET_NULL, null=True)

            class Meta:
                app_label = "testapp"

    class CachedShelfResource(Resource):
        model = Shelf
        name = "cached-shelves"
        fields = ["id", "name"]
        filter_fields = {"items__box": ["eq"]}
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    with connection.schema_editor() as editor:
        for model in (Box, Shelf, Item):
            editor.create_model(model)
    try:
        with (
            registered_site("cached-shelves-test", CachedShelfResource) as site,
            site_mounted(settings, "cs", site),
        ):
            box = Box.objects.create()
            Item.objects.create(shelf=Shelf.objects.create(name="top"), box=box)
            anon, path = client_for(None), f"/cs/cached-shelves/?items__box={box.pk}"
            assert [d["name"] for d in get(anon, path).json()["docs"]] == ["top"]
            after = hit_then(anon, path, box.delete)
        assert after["X-Cache"] == "MISS"
        assert after.json()["docs"] == []
    finally:
        with connection.schema_editor() as editor:
            for model in (Item, Shelf, Box):
                editor.delete_model(model)


@pytest.mark.parametrize("rendered", ["nested", "string"])
def test_a_forward_relation_a_project_serializer_renders_as_more_than_an_id_invalidates(
    settings, rendered
):
    """A book's ``author`` rendered as the author (a nested serializer, or its ``str()``)
    rather than its id reads Author's rows, as the resource's own ``select_related`` of it
    says: renaming the author retires the book list."""
    from rest_framework import serializers

    class AuthorNameSerializer(serializers.ModelSerializer):
        class Meta:
            model = Author
            fields = ["id", "name"]

    author_field = (
        AuthorNameSerializer(read_only=True)
        if rendered == "nested"
        else serializers.StringRelatedField()
    )

    class BookWithAuthorSerializer(serializers.ModelSerializer):
        author = author_field

        class Meta:
            model = Book
            fields = ["id", "title", "author"]

    class BooksWithAuthorsResource(Resource):
        model = Book
        name = "books-with-authors"
        serializer_class = BookWithAuthorSerializer
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    with registered_site("books-with-authors-test", BooksWithAuthorsResource) as site:
        with site_mounted(settings, "ba", site):
            client, url = client_for(None), "/ba/books-with-authors/"
            author = AuthorFactory(name="Frank")
            BookFactory(author=author)

            def rename():
                author.name = "Herbert"
                author.save()

            after = hit_then(client, url, rename)
    assert after["X-Cache"] == "MISS"
    shown = after.json()["docs"][0]["author"]
    assert (shown["name"] if rendered == "nested" else shown) == "Herbert"


def test_an_object_rule_reading_a_related_row_reads_it_as_it_is_now(settings):
    """A hit runs the object rule on the row its entry kept, as ``get_object()`` would on
    the row it loads: a rule that reads a related row (the book's author) reads that row as
    it is now, not as the miss's check left it cached on the row. An author's rename, which
    changes no book's answer, is no write to the book list; it is one to the rule."""

    def not_withdrawn(request, resource, action, obj=None):
        return obj is None or not obj.author.name.startswith("Withdrawn")

    class GuardedBookResource(Resource):
        model = Book
        name = "guarded-books"
        fields = ["id", "title", "author"]
        permissions = {"list": P.allow_public(), "get": not_withdrawn}
        cache = {"stale_seconds": 30}

    class UncachedGuardedBookResource(GuardedBookResource):
        name = "uncached-guarded-books"
        cache = False

    resources = (GuardedBookResource, UncachedGuardedBookResource)
    with registered_site("guarded-books-test", *resources) as site:
        with site_mounted(settings, "gb", site):
            client = client_for(None)
            author = AuthorFactory(name="Frank")
            book = BookFactory(author=author)

            def withdraw():
                author.name = "Withdrawn Frank"
                author.save()

            after = hit_then(client, f"/gb/guarded-books/{book.pk}/", withdraw)
            uncached = client.get(f"/gb/uncached-guarded-books/{book.pk}/")
    assert uncached.status_code == 403
    # (a HIT refused, or a MISS when another test's resource reading Author's rows left
    # Author's writes bumping every resource over Book: 403 either way)
    assert after.status_code == 403


def in_a_members_organization(request, resource, action, obj=None):
    """Products of the organizations the caller is a member of: a permission filtering
    through another model's rows (Membership), which no write to Product changes."""
    from django_arc import PermissionResult
    from django_arc.scope import get_scope

    user_id = get_scope(request).user_id
    if user_id is None:
        return False
    return PermissionResult(True, filters={"organization__memberships__user": user_id})


def by_owner_column(request, resource, action, obj=None):
    """A plain column condition, as ``require_owner`` adds: no other model's rows."""
    from django_arc import PermissionResult

    return PermissionResult(True, filters={"organization__pk": request.GET.get("org", 0)})


class MembersProductResource(Resource):
    model = Product
    name = "members-products"
    fields = ["id", "name", "organization"]
    permissions = {"list": in_a_members_organization, "get": in_a_members_organization}
    cache = {"stale_seconds": 30}


class ColumnProductResource(Resource):
    model = Product
    name = "column-products"
    fields = ["id", "name", "organization"]
    permissions = {"list": by_owner_column, "get": by_owner_column}
    cache = {"stale_seconds": 30}


def test_a_permission_filtering_through_another_models_rows_is_never_served_stale(settings):
    """A permission's filters through a relation (``organization__memberships__user``) make
    which rows a caller may see depend on Membership's rows: a membership revoked (in the
    admin, a shell) retires no entry, and the revoked member was served its former
    organization's products as a HIT until ``stale_seconds``. Such answers are not stored;
    a plain column condition (``organization__pk``, compared without a join) still is."""

    organization = OrganizationFactory()
    product = ProductFactory(organization=organization, name="P1")
    membership = MembershipFactory(organization=organization, role="viewer")
    caller = client_for(membership.user)
    mine = "/mp/members-products/"
    with (
        registered_site(
            "members-products-test", MembersProductResource, ColumnProductResource
        ) as site,
        site_mounted(settings, "mp", site),
    ):
        for path in (mine, f"{mine}{product.pk}/"):
            assert get(caller, path).status_code == 200
            again = get(caller, path)
            assert again.status_code == 200 and again["X-Cache"] == "MISS"  # never stored
        Membership.objects.filter(pk=membership.pk).delete()
        after = get(caller, mine)
        assert after.status_code == 200 and after.json()["total"] == 0, after.content
        assert get(caller, f"{mine}{product.pk}/").status_code == 404
        column = f"/mp/column-products/?org={organization.pk}"
        assert get(caller, column)["X-Cache"] == "MISS"
        hit = get(caller, column)
        assert hit["X-Cache"] == "HIT" and hit.json()["total"] == 1


class SubclassedCachedBookResource(CachedBookResource):
    name = "subclassed-cached-books"


def test_invalidate_of_a_resource_class_retires_that_resource_only(settings):
    """``invalidate(CachedBookResource)`` retires that resource's entries; a resource
    subclassing it is another resource, with entries (and versions) of its own: it stays a
    HIT (``invalidate(Book)`` is what retires every resource over the model)."""
    BookFactory(title="Dune")
    anon = client_for(None)
    with (
        registered_site(
            "subclassed-test", CachedBookResource, SubclassedCachedBookResource
        ) as site,
        site_mounted(settings, "sc", site),
    ):
        base, sub = "/sc/cached-books/", "/sc/subclassed-cached-books/"
        for url in (base, sub):
            get(anon, url)
            assert get(anon, url)["X-Cache"] == "HIT"
        invalidate(CachedBookResource)
        assert get(anon, base)["X-Cache"] == "MISS"
        assert get(anon, sub)["X-Cache"] == "HIT"
        invalidate(Book)
        assert get(anon, sub)["X-Cache"] == "MISS"


class MembersOnly(Preset):
    """A project's preset narrowing rows through another model (Membership): its
    ``row_filter`` makes the answer depend on rows no write to Product changes."""

    name = "members_only"

    def row_filter(self, view):
        return Q(organization__memberships__user=view.request.user.pk)


class PresetMembersProductResource(Resource):
    model = Product
    name = "preset-members-products"
    fields = ["id", "name", "organization"]
    presets = [MembersOnly()]
    permissions = {"list": P.require_auth(), "get": P.require_auth()}
    cache = {"stale_seconds": 30}


def test_a_preset_narrowing_through_another_models_rows_is_never_served_stale(settings):
    """As for a permission's filters: a preset's ``row_filter`` through a relation
    (``organization__memberships__user``) makes the rows a caller may see depend on
    Membership's rows, which retire no entry. Such answers are not stored, so a revoked
    member sees no row at once (rather than a HIT of the former organization's products)."""
    organization = OrganizationFactory()
    product = ProductFactory(organization=organization, name="P1")
    membership = MembershipFactory(organization=organization, role="viewer")
    caller = client_for(membership.user)
    mine = "/pm/preset-members-products/"
    with (
        registered_site("preset-members-products-test", PresetMembersProductResource) as site,
        site_mounted(settings, "pm", site),
    ):
        for path in (mine, f"{mine}{product.pk}/"):
            assert get(caller, path).status_code == 200
            again = get(caller, path)
            assert again.status_code == 200 and again["X-Cache"] == "MISS"  # never stored
        Membership.objects.filter(pk=membership.pk).delete()
        after = get(caller, mine)
        assert after.status_code == 200 and after.json()["total"] == 0, after.content
        assert get(caller, f"{mine}{product.pk}/").status_code == 404


def test_a_resource_routed_by_hand_is_invalidated_like_a_registered_one(settings):
    """``Resource.as_viewset()`` routes a resource on no site (docs/resources.md): its
    cached answers are retired by the writes that retire a registered one's — a model
    signal (an admin save, ``save()`` in a task) and ``invalidate()`` of its model or its
    class."""
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    import tests.urls

    class HandRoutedBookResource(Resource):
        model = Book
        name = "hand-routed-books"
        fields = ["id", "title"]
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    router = SimpleRouter()
    router.register("hand-routed-books", HandRoutedBookResource.as_viewset(), basename="hrb")
    patterns = [*tests.urls.urlpatterns, path("hr/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        client, url = client_for(None), "/hr/hand-routed-books/"
        book = BookFactory(title="Dune")

        def renamed(title):
            def rename():
                book.title = title
                book.save()

            return rename

        def updated_and_invalidated(target, title):
            def update():
                Book.objects.filter(pk=book.pk).update(title=title)
                invalidate(target)

            return update

        for write, title in (
            (renamed("Dune Messiah"), "Dune Messiah"),
            (updated_and_invalidated(Book, "Children of Dune"), "Children of Dune"),
            (updated_and_invalidated(HandRoutedBookResource, "God Emperor"), "God Emperor"),
        ):
            after = hit_then(client, url, write)
            assert after["X-Cache"] == "MISS", title
            assert [d["title"] for d in after.json()["docs"]] == [title]
    finally:
        clear_url_caches()


def test_two_resources_of_one_name_never_serve_each_others_answers(settings):
    """A resource's name defaults to its model's (``books``), and two resources routed by
    hand — or registered on two sites left with the default site name — may share it: an
    entry is still only served by the resource that rendered it, never by one declaring
    other fields."""
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    import tests.urls

    class PublicBookResource(Resource):
        model = Book
        fields = ["id", "title"]
        permissions = {"list": P.allow_public(), "get": P.allow_public()}
        cache = {"stale_seconds": 30}

    class InternalBookResource(PublicBookResource):
        fields = ["id", "title", "isbn"]

    assert PublicBookResource().name == InternalBookResource().name == "books"
    router = SimpleRouter()
    router.register("public", PublicBookResource.as_viewset(), basename="public-books")
    router.register("internal", InternalBookResource.as_viewset(), basename="internal-books")
    patterns = [*tests.urls.urlpatterns, path("tw/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        client = client_for(None)
        book = BookFactory(title="Dune", isbn="978-0441013593")
        internal = client.get("/tw/internal/")
        assert internal.json()["docs"] == [{"id": book.pk, "title": "Dune", "isbn": book.isbn}]
        public = client.get("/tw/public/")
        assert public["X-Cache"] == "MISS"
        assert public.json()["docs"] == [{"id": book.pk, "title": "Dune"}]
        detail = client.get(f"/tw/internal/{book.pk}/")
        assert detail.json()["data"]["isbn"] == book.isbn
        assert "isbn" not in client.get(f"/tw/public/{book.pk}/").json()["data"]
    finally:
        clear_url_caches()


def test_an_object_rule_reading_prefetched_rows_reads_them_as_they_are_now(settings):
    """The same for rows a project's ``get_queryset()`` prefetched onto the row (its
    ``reviews``, which the resource does not render): a hit's object rule counting them
    reads them as they are now, as the rule on the row ``get_object()`` loads does, not the
    list the miss prefetched and the entry pickled. A review written after the miss changes
    no book's answer, and the project's own prefetch is no dependency of it."""

    def unflagged(request, resource, action, obj=None):
        return obj is None or not any(r.body.startswith("Flagged") for r in obj.reviews.all())

    class ReviewedBookResource(Resource):
        model = Book
        name = "reviewed-books"
        fields = ["id", "title"]
        permissions = {"list": P.allow_public(), "get": unflagged}
        cache = {"stale_seconds": 30}

        def get_queryset(self, request):
            return super().get_queryset(request).prefetch_related("reviews")

    class UncachedReviewedBookResource(ReviewedBookResource):
        name = "uncached-reviewed-books"
        cache = False

    resources = (ReviewedBookResource, UncachedReviewedBookResource)
    with registered_site("reviewed-books-test", *resources) as site:
        with site_mounted(settings, "rb", site):
            client = client_for(None)
            book = BookFactory()
            Review.objects.create(book=book, body="Fine")

            def flag():
                Review.objects.create(book=book, body="Flagged as spam")

            after = hit_then(client, f"/rb/reviewed-books/{book.pk}/", flag)
            uncached = client.get(f"/rb/uncached-reviewed-books/{book.pk}/")
    assert uncached.status_code == 403
    assert after.status_code == 403
