"""rev-fixes68's review of rev-fixes65, rev-fixes66, rev-fixes67 and the lead's refactors
after them (``FieldAccess.body_verdict``, ``fields.write_denied``)."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as F
from django_arc import permissions as P
from shop.models import Organization
from tests.factories import AuthorFactory, BookFactory, OrganizationFactory, member_client
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.test_query_cache import get
from tests.test_query_cache_invalidation import hit_then, registered_site
from tests.testapp.models import Author, Book, Note, Review

pytestmark = pytest.mark.django_db

rf68_site = ResourceSite(name="rev-fixes68")


class _Rf68OnRowSerializer(serializers.Serializer):
    """Values of the row's own (``source="*"``): ``owner`` is the owner column a preset
    manages, ``org`` the tenant column."""

    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False
    )
    org = serializers.PrimaryKeyRelatedField(
        source="organization", queryset=Organization.objects.all(), required=False
    )
    text = serializers.CharField(required=False)


class _Rf68NoteSerializer(serializers.ModelSerializer):
    meta = _Rf68OnRowSerializer(source="*", required=False)

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner", "internal", "meta"]


class _Rf68Base(Resource):
    model = Note
    serializer_class = _Rf68NoteSerializer
    read_only_fields = ["id", "internal"]
    presets = [presets.MultiTenant(), presets.OwnedBy()]
    permissions = {k: P.require_org_membership() for k in ("list", "get", "create", "update")}


@rf68_site.register
class Rf68OnRowResource(_Rf68Base):
    name = "rf68-on-row"


@rf68_site.register
class Rf68OnRowStripResource(_Rf68Base):
    name = "rf68-on-row-strip"
    on_field_write_denied = "strip"


@rf68_site.register
class Rf68MetaHiddenResource(_Rf68Base):
    name = "rf68-meta-hidden"
    field_permissions = {"meta": F.hidden()}


@pytest.fixture
def rf68_world(settings):
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    stranger = member_client(OrganizationFactory(), "editor").handler._force_user
    with site_mounted(settings, "rf68", rf68_site):
        yield {"org": org, "editor": editor, "stranger": stranger}


def _note(client, resource):
    r = client.post(f"/rf68/{resource}/", {"branch": "x", "text": "t"}, format="json")
    assert r.status_code == 201, r.content
    return f"/rf68/{resource}/{r.json()['data']['id']}/"


def test_rf68_a_refusal_names_the_top_level_and_the_nested_keys_together(rf68_world):
    """The spec's 403 lists *all* the fields the caller may not write. rev-fixes66 judged a
    nested ``source="*"`` serializer's keys only once the body's top-level keys had passed:
    ``{"internal": …, "meta": {"owner": …}}`` was refused naming ``internal`` alone, and the
    caller, fixing that, was refused again for ``meta.owner``."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-on-row")
    r = editor.patch(url, {"internal": "x", "meta": {"owner": stranger.pk}}, format="json")
    assert r.status_code == 403, r.content
    assert r.json()["details"] == {"fields": ["internal", "meta.owner"]}
    assert r.json()["error"] == "Not permitted to write fields: internal, meta.owner"
    note = Note.objects.get()
    assert (note.owner, note.internal) == (editor.handler._force_user, "")


def test_rf68_strip_drops_the_top_level_and_the_nested_keys_refused(rf68_world):
    """Under ``strip`` both are dropped and the rest written."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-on-row-strip")
    r = editor.patch(
        url,
        {"internal": "x", "text": "top", "meta": {"owner": stranger.pk}},
        format="json",
    )
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.internal, note.text) == (editor.handler._force_user, "", "top")


def test_rf68_a_hidden_nested_serializer_is_not_judged_key_by_key(rf68_world):
    """A ``hidden()`` ``meta`` is dropped as if it did not exist: no 403 naming
    ``meta.owner`` confirms it does, and nothing of it is written."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-meta-hidden")
    r = editor.patch(url, {"text": "top", "meta": {"owner": stranger.pk}}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.text) == (editor.handler._force_user, "top")


class _Rf68DictOnRowSerializer(serializers.ModelSerializer):
    """``extra`` is a write-only bag of the row's own values: DRF merges a
    ``DictField(source="*")``'s dict into the row's values as it does a nested
    serializer's."""

    extra = serializers.DictField(source="*", required=False, write_only=True)

    class Meta:
        model = Note
        fields = ["id", "branch", "text", "organization", "owner", "internal", "extra"]


@rf68_site.register
class Rf68DictOnRowResource(_Rf68Base):
    name = "rf68-dict-on-row"
    serializer_class = _Rf68DictOnRowSerializer


def test_rf68_a_dict_field_on_the_row_is_judged_key_by_key(rf68_world):
    """rev-fixes66 judged the keys of a nested *serializer* on the row (``source="*"``);
    a ``DictField(source="*")`` writes the row's columns by its keys too, unjudged:
    ``{"extra": {"owner_id": …}}`` handed the note to a user of another tenant (200, owner
    moved). Each key is judged as the column it names (by name or attname), a key no
    column has by its own name."""
    editor, stranger, org = rf68_world["editor"], rf68_world["stranger"], rf68_world["org"]
    url = _note(editor, "rf68-dict-on-row")
    for key, value in (("owner_id", stranger.pk), ("owner", stranger.pk), ("internal", "x")):
        r = editor.patch(url, {"extra": {key: value}}, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": [f"extra.{key}"]}
    # what the caller may write it writes; its own tenant is harmless and dropped
    r = editor.patch(url, {"extra": {"text": "own", "organization_id": org.pk}}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.organization, note.text, note.internal) == (
        editor.handler._force_user,
        org,
        "own",
        "",
    )


def _rf68_json_serializer(binary: bool) -> type:
    class _Rf68JsonOnRowSerializer(serializers.ModelSerializer):
        extra = serializers.JSONField(source="*", required=False, write_only=True, binary=binary)

        class Meta:
            model = Note
            fields = ["id", "branch", "text", "organization", "owner", "internal", "extra"]

    return _Rf68JsonOnRowSerializer


@rf68_site.register
class Rf68JsonOnRowResource(_Rf68Base):
    name = "rf68-json-on-row"
    serializer_class = _rf68_json_serializer(binary=False)


@rf68_site.register
class Rf68BinaryJsonOnRowResource(_Rf68Base):
    name = "rf68-binary-json-on-row"
    serializer_class = _rf68_json_serializer(binary=True)


@rf68_site.register
class Rf68BinaryJsonOnRowStripResource(Rf68BinaryJsonOnRowResource):
    name = "rf68-binary-json-on-row-strip"
    on_field_write_denied = "strip"


@pytest.mark.parametrize(
    "resource,as_text",
    [("rf68-json-on-row", False), ("rf68-binary-json-on-row", True), ("rf68-json-on-row", None)],
)
def test_rf68_a_json_field_on_the_row_is_judged_key_by_key(rf68_world, resource, as_text):
    """A ``JSONField(source="*")`` is merged into the row's values as a ``DictField`` is,
    its object sent as JSON, as text (``binary=True``) or in a form (DRF parses the
    form's text): ``{"extra": {"owner_id": …}}`` moved the owner to a user of another
    tenant (200). Its keys are judged as the columns they name, the text parsed to judge
    it."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, resource)
    value = {"owner_id": stranger.pk}
    if as_text is None:  # a form: DRF reads the field's text as JSON
        r = editor.patch(url, {"extra": json.dumps(value)}, format="multipart")
    else:
        r = editor.patch(url, {"extra": json.dumps(value) if as_text else value}, format="json")
    assert r.status_code == 403, r.content
    assert r.json()["details"] == {"fields": ["extra.owner_id"]}
    assert Note.objects.get().owner == editor.handler._force_user


def test_rf68_a_json_fields_text_is_written_without_the_keys_stripped(rf68_world):
    """Under ``strip`` the keys refused are dropped from the text and the rest written."""
    editor, stranger = rf68_world["editor"], rf68_world["stranger"]
    url = _note(editor, "rf68-binary-json-on-row-strip")
    text = json.dumps({"owner_id": stranger.pk, "text": "kept"})
    r = editor.patch(url, {"extra": text}, format="json")
    assert r.status_code == 200, r.content
    note = Note.objects.get()
    assert (note.owner, note.text) == (editor.handler._force_user, "kept")


# -- rev-fixes67: a Prefetch queryset's order read without asking the routers ---------------


class _Rf68RequestRouter:
    """A router answering only inside a request (a tenant's database read from the request,
    as a project's may): outside one, it raises."""

    in_request = False

    def db_for_read(self, model, **hints):
        if not _Rf68RequestRouter.in_request:
            raise RuntimeError("no request: no tenant database")
        return "default"

    db_for_write = db_for_read


class Rf68AuthorsBooksByReviewPath(Resource):
    """Authors rendering their books in a declared ``Prefetch`` queryset's order: by their
    reviews' text (a path joined only when the query is compiled)."""

    model = Author
    name = "rf68-books-by-review-path"
    queryset = Author.objects.prefetch_related(
        Prefetch("books", queryset=Book.objects.order_by("reviews__body", "pk"))
    )
    fields = ["id", "name", "books"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_rf68_a_prefetch_order_is_read_where_the_routers_answer_only_in_a_request(
    settings, monkeypatch
):
    """rev-fixes67 compiled a ``Prefetch`` queryset's order on ``queryset.db``, which asks
    the project's routers; one answering only inside a request raised there (at start-up,
    or at ``register()``), the order was taken to read nothing, and a review reworded left
    the author's answer a HIT with the books in the old order. The order's joins are the
    same on every database: it is compiled without the routers."""
    from django_arc.querycache import invalidation

    monkeypatch.setattr(invalidation, "_readers", {})
    monkeypatch.setattr(invalidation, "_readers_by_table", {})
    monkeypatch.setattr(_Rf68RequestRouter, "in_request", True)
    settings.DATABASE_ROUTERS = [_Rf68RequestRouter()]
    author = AuthorFactory(name="Tolkien")
    first, second = BookFactory(author=author), BookFactory(author=author)
    review = Review.objects.create(book=first, body="a")
    Review.objects.create(book=second, body="b")
    resource = Rf68AuthorsBooksByReviewPath
    _Rf68RequestRouter.in_request = False  # registered outside a request, as at start-up
    with query_cache_on_redis(), registered_site("rf68-prefetch-order", resource) as site:
        _Rf68RequestRouter.in_request = True
        with site_mounted(settings, "rf68o", site):
            client = client_for(None)
            path = f"/rf68o/{resource.name}/"
            assert get(client, path).json()["docs"][0]["books"] == [first.pk, second.pk]

            def reword():
                review.body = "c"
                review.save()

            after = hit_then(client, path, reword)
    assert after["X-Cache"] == "MISS"
    assert after.json()["docs"][0]["books"] == [second.pk, first.pk]
