"""What one request may cost the server, as a function of what its client sends.

A request's SQL statements, rows and response bytes must not grow with something the
client controls beyond what the contract bounds (``MAX_PAGE_SIZE``, ``max_items``, the 500
values of ``[in]``, ``DATA_UPLOAD_MAX_MEMORY_SIZE``). Measured as statements and bytes,
never as time.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from tests.factories import AuthorFactory, MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Book, CodeThing, DecimalThing, RefHolder, UuidThing

pytestmark = pytest.mark.django_db

PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}

cost_site = ResourceSite(name="cost")


class AttachInput(serializers.Serializer):
    file = serializers.FileField()


class JoinInput(serializers.Serializer):
    groups = serializers.PrimaryKeyRelatedField(many=True, queryset=Group.objects.all())
    tags = serializers.ListField(child=serializers.CharField())


@cost_site.register
class GroupedUserResource(Resource):
    """A writable many-to-many relation (``groups``) in the generated serializer."""

    model = User
    name = "grouped-users"
    fields = ["id", "username", "groups"]
    permissions = PUBLIC

    @route("POST", "upload", permissions=P.allow_public(), parser_classes=[MultiPartParser])
    def upload(self, request):
        return {"size": request.data["file"].size}

    @action(permissions=P.allow_public(), input=AttachInput)
    def attach(self, request, instance, data):
        return {"size": data["file"].size}

    @action(permissions=P.allow_public(), input=JoinInput)
    def join(self, request, instance, data):
        return {"groups": [g.pk for g in data["groups"]], "tags": data["tags"]}


@cost_site.register
class RefHolderResource(Resource):
    """Relations to rows keyed by text, a UUID and a decimal, one and ``many=True``."""

    model = RefHolder
    name = "ref-holders"
    fields = ["id", "name", "code", "thing", "number", "codes", "things", "numbers"]
    permissions = PUBLIC


@cost_site.register
class BulkRefHolderResource(Resource):
    """The same relations one at a time, with Bulk (which writes no many-to-many: E011),
    whose batch preloads every item's targets in one query per field."""

    model = RefHolder
    name = "bulk-ref-holders"
    fields = ["id", "name", "code", "thing", "number"]
    permissions = PUBLIC
    presets = [presets.Bulk()]


class TeamSerializer(serializers.ModelSerializer):
    """A project's serializer declaring DRF's own ``many=True`` relation."""

    groups = serializers.PrimaryKeyRelatedField(many=True, queryset=Group.objects.all())

    class Meta:
        model = User
        fields = ["id", "username", "groups"]


@cost_site.register
class TeamUserResource(Resource):
    model = User
    name = "team-users"
    serializer_class = TeamSerializer
    permissions = PUBLIC


def _post(api, body):
    with CaptureQueriesContext(connection) as queries:
        response = api.post(
            "/cost/grouped-users/", json.dumps(body), content_type="application/json"
        )
    return response, len(queries)


GROUPS_BY_ID = (
    'SELECT "auth_group"."id", "auth_group"."name" FROM "auth_group" WHERE "auth_group"."id" IN'
)


def _group_reads(api, body):
    """The response, and how many statements read ``auth_group`` by id."""
    with CaptureQueriesContext(connection) as queries:
        response = api.post(
            "/cost/grouped-users/", json.dumps(body), content_type="application/json"
        )
    reads = [q for q in queries.captured_queries if q["sql"].startswith(GROUPS_BY_ID)]
    return response, len(reads)


def _patch(api, pk, body):
    with CaptureQueriesContext(connection) as queries:
        response = api.patch(
            f"/cost/grouped-users/{pk}/", json.dumps(body), content_type="application/json"
        )
    return response, len(queries)


def test_a_many_to_many_list_costs_the_same_statements_however_long_it_is(api, settings):
    """DRF's ``many=True`` relation looks each id up with a query of its own: a body
    ``{"groups": [1, 1, 1, …]}`` of 2.5 MB (the memory limit) was about a million ``SELECT``s
    from one request. The ids are read in one query per 500 items, only the ones not read
    yet: a long list of the same few rows costs what a short one does."""
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    ids = [g.pk for g in groups]
    with site_mounted(settings, "cost", cost_site):
        short, short_sql = _post(api, {"username": "short", "groups": ids})
        long, long_sql = _post(api, {"username": "long", "groups": ids * 1000})
        assert short.status_code == 201, short.content
        assert long.status_code == 201, long.content
        assert long_sql == short_sql
        assert sorted(long.json()["data"]["groups"]) == sorted(ids)
        # two users in the same three groups, one given a long list, the other a short one
        short_user, long_user = User.objects.filter(username__in=["short", "long"]).order_by("pk")
        patched, patch_sql = _patch(api, long_user.pk, {"groups": ids[:1] * 2000})
        # (a repeated id costs Django's ``set()`` one INSERT of a row it has: twice is enough)
        again, again_sql = _patch(api, short_user.pk, {"groups": ids[:1] * 2})
        assert patched.status_code == 200, patched.content
        assert again.status_code == 200, again.content
        assert patched.json()["data"]["groups"] == again.json()["data"]["groups"] == ids[:1]
        assert patch_sql == again_sql
    assert list(long_user.groups.values_list("pk", flat=True)) == ids[:1]


def test_many_distinct_ids_are_read_500_to_a_query(api, settings):
    """Distinct ids that exist are read 500 to a query (any database takes that many
    parameters): 1,200 of them are three reads of the groups, one of them one."""
    groups = Group.objects.bulk_create([Group(name=f"g{i}") for i in range(1200)])
    ids = sorted(g.pk for g in Group.objects.filter(pk__in=[g.pk for g in groups]))
    with site_mounted(settings, "cost", cost_site):
        one, one_reads = _group_reads(api, {"username": "one", "groups": ids[:1]})
        many, many_reads = _group_reads(api, {"username": "many", "groups": ids})
    assert one.status_code == 201 and many.status_code == 201, many.content
    assert (one_reads, many_reads) == (1, 3)
    assert User.objects.get(username="many").groups.count() == 1200


def test_a_many_to_many_object_of_ids_costs_what_a_list_does(api, settings):
    """DRF reads a JSON object sent for a ``many=True`` relation as the list of its keys; it
    was handed to DRF's own lookups, one ``SELECT`` per key: keys are distinct, but
    ``"1"``, ``"01"``, ``" 1"``, ``"１"``… all name row 1, so a 2.5 MB object was a hundred
    thousand queries, the cost the batched list had removed. Its keys are read as a list's
    items are, 500 to a query."""
    group = Group.objects.create(name="g")
    spellings = {
        f"{pad}{'0' * zeros}{group.pk}": 0 for pad in ("", " ", "\t") for zeros in range(400)
    }

    def group_reads(body):
        with CaptureQueriesContext(connection) as queries:
            response = api.post(
                "/cost/grouped-users/", json.dumps(body), content_type="application/json"
            )
        return response, sum('FROM "auth_group"' in q["sql"] for q in queries.captured_queries)

    with site_mounted(settings, "cost", cost_site):
        listed, list_reads = group_reads({"username": "listed", "groups": [group.pk] * 1200})
        keyed, keyed_reads = group_reads({"username": "keyed", "groups": spellings})
    assert listed.status_code == 201, listed.content
    assert keyed.status_code == 201, keyed.content
    assert keyed.json()["data"]["groups"] == [group.pk]
    assert keyed_reads == list_reads  # 1,200 items naming one row: one read of it
    # a key no row has is refused as DRF refuses it
    with site_mounted(settings, "cost", cost_site):
        response, _ = _post(api, {"username": "u", "groups": {str(group.pk): 0, "x": 0}})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"groups": ["Incorrect type. Expected pk value, received str."]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("missing", 'Invalid pk "{missing}" - object does not exist.'),
        ("x", "Incorrect type. Expected pk value, received str."),
        (True, "Incorrect type. Expected pk value, received bool."),
        (2**70, 'Invalid pk "{big}" - object does not exist.'),
        ([1], "Incorrect type. Expected pk value, received list."),
    ],
    ids=["missing", "text", "bool", "beyond int64", "list"],
)
def test_a_bad_id_in_a_long_many_to_many_list_is_refused_as_drf_refuses_it(
    api, settings, value, message
):
    """The first id that is no visible row is refused with DRF's own message, after at
    most the queries of the items before it: none of the ids after it is read."""
    group = Group.objects.create(name="g")
    missing = group.pk + 1000
    bad = missing if value == "missing" else value
    with site_mounted(settings, "cost", cost_site):
        response, _ = _post(api, {"username": "u", "groups": [group.pk, bad] + [group.pk] * 999})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"groups": [message.format(missing=missing, big=2**70)]}
    assert not User.objects.filter(username="u").exists()


def test_a_bulk_filter_refusal_names_ten_unknown_filters_not_every_one(api):
    """A bulk update's ``filter`` naming filters the resource does not have is refused
    with each one listed: a 1.3 MB body of 100,000 such names was a 4.4 MB answer (3.4
    times the request, stored as such under an ``Idempotency-Key``). The first ten, in the
    order sent, are named; one more costs nothing."""
    author = AuthorFactory()
    Book.objects.create(title="t", isbn="1", author=author, pages=1)
    unknown = {f"k{i}": 1 for i in range(100_000)}
    body = json.dumps({"filter": {"title": "t", **unknown}, "data": {"title": "x"}})
    response = api.patch("/api/bulk-books/bulk/", body, content_type="application/json")
    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert details == {"filter": {f"k{i}": ["Not a filter of this resource."] for i in range(10)}}
    assert len(response.content) < 1000
    assert Book.objects.get().title == "t"


@pytest.mark.parametrize(
    ("key", "named", "message"),
    [
        ("k" * 2_000_000, "k" * 50 + "…", "Not a filter of this resource."),
        (
            "title[" + "x" * 1_000_000 + "]",
            "title[" + "x" * 44 + "…",
            f"unknown operator '{'x' * 50}…'",
        ),
        ("k" * 51, "k" * 50 + "…", "Not a filter of this resource."),
        ("k" * 50, "k" * 50, "Not a filter of this resource."),
    ],
    ids=["a 2 MB unknown name", "a 1 MB unknown operator", "51 characters", "50 characters"],
)
def test_a_bulk_filter_refusal_quotes_a_long_filter_by_its_first_50_characters(
    api, key, named, message
):
    """Ten names are named, but each was named whole: one unknown filter of 2 MB was a 2 MB
    answer, and a known filter with a 1 MB operator was answered twice over (the name, and
    the query language's message quoting the operator). Both are quoted by their first 50
    characters, as an unknown action and a query value are."""
    Book.objects.create(title="t", isbn="1", author=AuthorFactory(), pages=1)
    body = json.dumps({"filter": {key: "t"}, "data": {"title": "x"}})
    response = api.patch("/api/bulk-books/bulk/", body, content_type="application/json")
    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert details == {"filter": {named: [message]}}
    assert len(response.content) < 1000
    assert Book.objects.get().title == "t"


class _Upload(FileUploadHandler):
    """Counts the bytes of files Django reads from a multipart body."""

    def receive_data_chunk(self, raw_data, start):
        UPLOADED.append(len(raw_data))
        return raw_data

    def file_complete(self, file_size):
        return None


UPLOADED: list[int] = []
COUNTED_UPLOADS = [
    "tests.test_request_cost._Upload",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
]


@pytest.fixture
def uploads(settings):
    settings.FILE_UPLOAD_HANDLERS = COUNTED_UPLOADS
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    UPLOADED.clear()
    yield UPLOADED
    UPLOADED.clear()


def test_a_multipart_body_over_the_memory_limit_is_413_where_no_field_takes_a_file(api, uploads):
    """Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` leaves a multipart body's files out: a
    create on a resource with no file field read a 20 MB file part whole (spooled to disk
    past 2.5 MB) and answered 201, the file ignored. Its body is now read under the limit,
    as a JSON or form body is: 413, before any file is read."""
    author = AuthorFactory()
    fields = {"title": "t", "isbn": "1", "author": author.pk}
    blob = SimpleUploadedFile("blob.bin", b"x" * 50_000)
    response = api.post("/api/books/", {**fields, "blob": blob}, format="multipart")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert sum(uploads) == 0
    assert not Book.objects.exists()
    # a multipart body within the limit (the browsable API's forms) is read as before
    response = api.post("/api/books/", fields, format="multipart")
    assert response.status_code == 201, response.content


def test_a_route_with_parsers_of_its_own_still_takes_a_file_past_the_memory_limit(
    api, settings, uploads
):
    """A route naming its parsers (an upload) chose to read files: not bounded here."""
    with site_mounted(settings, "cost", cost_site):
        response = api.post(
            "/cost/grouped-users/upload/",
            {"file": SimpleUploadedFile("big.bin", b"x" * 50_000)},
            format="multipart",
        )
    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"size": 50_000}
    assert sum(uploads) == 50_000


def test_a_resource_whose_action_takes_a_file_still_takes_one_past_the_memory_limit(
    api, settings, uploads
):
    """A resource with a file field (here an action's ``input``) reads its files as
    Django does: the memory limit bounds the other fields only."""
    user = User.objects.create(username="u")
    with site_mounted(settings, "cost", cost_site):
        response = api.post(
            f"/cost/grouped-users/{user.pk}/action/",
            {"action": "attach", "file": SimpleUploadedFile("big.bin", b"x" * 50_000)},
            format="multipart",
        )
    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"size": 50_000}
    assert sum(uploads) == 50_000


class TeamGroupsUserSerializer(serializers.ModelSerializer):
    """Its many-to-many relation offers some rows only (``extra_kwargs``' queryset)."""

    class Meta:
        model = User
        fields = ["id", "username", "groups"]
        extra_kwargs = {"groups": {"queryset": Group.objects.filter(name__startswith="team-")}}


@cost_site.register
class TeamGroupsUserResource(Resource):
    model = User
    name = "team-groups-users"
    serializer_class = TeamGroupsUserSerializer
    permissions = PUBLIC


def test_a_many_to_many_list_read_in_batches_names_only_rows_its_queryset_offers(api, settings):
    """The batched read of a ``many=True`` list looks its ids up in the relation's own
    queryset, as DRF's lookup does: a row outside it (a group not offered) is refused as no
    row, and nothing is written."""
    team, other = Group.objects.create(name="team-a"), Group.objects.create(name="staff")
    with site_mounted(settings, "cost", cost_site):
        refused = api.post(
            "/cost/team-groups-users/",
            {"username": "r", "groups": [team.pk, other.pk]},
            format="json",
        )
        details = assert_error(refused, 400, "VALIDATION_ERROR")["details"]
        assert details == {"groups": [f'Invalid pk "{other.pk}" - object does not exist.']}
        assert not User.objects.filter(username="r").exists()
        # text is no list, though its characters would read as ids
        text = api.post(
            "/cost/team-groups-users/", {"username": "t", "groups": str(team.pk)}, format="json"
        )
        details = assert_error(text, 400, "VALIDATION_ERROR")["details"]
        assert details == {"groups": ['Expected a list of items but got type "str".']}
        kept = api.post(
            "/cost/team-groups-users/", {"username": "k", "groups": [team.pk]}, format="json"
        )
    assert kept.status_code == 201, kept.content
    assert list(User.objects.get(username="k").groups.all()) == [team]


class ShownFileUserSerializer(serializers.ModelSerializer):
    """Renders a file field it never takes (read-only)."""

    shown = serializers.FileField(read_only=True, source="first_name")

    class Meta:
        model = User
        fields = ["id", "username", "shown"]


@cost_site.register
class ShownFileUserResource(Resource):
    model = User
    name = "shown-file-users"
    serializer_class = ShownFileUserSerializer
    permissions = PUBLIC


class AttachmentsUserSerializer(serializers.ModelSerializer):
    """Takes files in a list (``ListField(child=FileField())``)."""

    attachments = serializers.ListField(child=serializers.FileField(), write_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "attachments"]

    def create(self, validated_data):
        size = sum(f.size for f in validated_data.pop("attachments"))
        return super().create({**validated_data, "first_name": str(size)})


@cost_site.register
class AttachmentsUserResource(Resource):
    model = User
    name = "attachments-users"
    serializer_class = AttachmentsUserSerializer
    permissions = PUBLIC


def test_a_file_field_counts_where_it_takes_a_file_only(api, settings, uploads):
    """A read-only file field takes no file: a multipart body over the memory limit is 413.
    A file field inside a list takes files: read as Django reads them."""
    with site_mounted(settings, "cost", cost_site):
        shown = api.post(
            "/cost/shown-file-users/",
            {"username": "s", "blob": SimpleUploadedFile("big.bin", b"x" * 50_000)},
            format="multipart",
        )
        assert_error(shown, 413, "PAYLOAD_TOO_LARGE")
        assert sum(uploads) == 0
        listed = api.post(
            "/cost/attachments-users/",
            {"username": "l", "attachments": SimpleUploadedFile("big.bin", b"x" * 50_000)},
            format="multipart",
        )
    assert listed.status_code == 201, listed.content
    assert User.objects.get(username="l").first_name == "50000"
    assert sum(uploads) == 50_000


class AvatarUserSerializer(serializers.ModelSerializer):
    """Takes a file from a signed-in caller only: a field chosen per request, as DRF lets a
    serializer's ``get_fields()`` choose them."""

    class Meta:
        model = User
        fields = ["id", "username"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            fields["avatar"] = serializers.FileField(write_only=True)
        return fields

    def create(self, validated_data):
        size = validated_data.pop("avatar").size
        return super().create({**validated_data, "first_name": str(size)})


@cost_site.register
class AvatarUserResource(Resource):
    model = User
    name = "avatar-users"
    serializer_class = AvatarUserSerializer
    permissions = PUBLIC


class InitAvatarUserSerializer(serializers.ModelSerializer):
    """The same choice made in ``__init__`` (a project's other common way)."""

    class Meta:
        model = User
        fields = ["id", "username"]

    def create(self, validated_data):
        size = validated_data.pop("avatar").size
        return super().create({**validated_data, "first_name": str(size)})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["avatar"] = serializers.FileField(write_only=True)


@cost_site.register
class InitAvatarUserResource(AvatarUserResource):
    name = "init-avatar-users"
    serializer_class = InitAvatarUserSerializer


@pytest.mark.parametrize("name", ["avatar-users", "init-avatar-users"])
def test_a_serializer_choosing_its_fields_per_request_still_takes_a_file_past_the_limit(
    settings, uploads, name
):
    """Whether a resource takes files was read from its serializer built without a request:
    one adding its file field per request (``get_fields()``, as DRF allows) was judged to
    take none, and its uploads past the memory limit were refused 413. A serializer that
    chooses its fields itself may take a file: its multipart bodies are read as Django
    reads them."""
    caller = User.objects.create(username="caller")
    with site_mounted(settings, "cost", cost_site):
        response = client_for(caller).post(
            f"/cost/{name}/",
            {"username": "a", "avatar": SimpleUploadedFile("a.png", b"x" * 50_000)},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    assert User.objects.get(username="a").first_name == "50000"
    assert sum(uploads) == 50_000


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_cached_list_stores_one_fixed_length_entry_per_distinct_query():
    """What a client can make the query cache hold: one entry per request at most, under a
    key of one length whatever its query's, and none for parameters the query language
    ignores (a cache buster). The cache's size is the requests' rate times ``gc_seconds``:
    docs/query-cache.md says to give it a Redis of its own."""
    import redis as redis_py

    caches = caches_with("redis", REDIS_URL)
    org = OrganizationFactory()
    ProductFactory(organization=org, name="p")
    viewer = client_for(
        MembershipFactory(organization=org, role="viewer").user,
        HTTP_X_ORGANIZATION_ID=str(org.pk),
    )
    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis"})),
    ):
        server = redis_py.Redis.from_url(REDIS_URL)
        pattern = f"{caches['redis']['KEY_PREFIX']}:*arc:qc:e:*"
        for i in range(20):
            response = viewer.get(f"/api/cached-products/?utm_source={'x' * 1000}{i}")
            assert response.status_code == 200, response.content
        assert len(server.keys(pattern)) == 1
        for i in range(20):
            response = viewer.get(f"/api/cached-products/?name[contains]={'y' * 900}{i}")
            assert response["X-Cache"] == "MISS"
        entries = server.keys(pattern)
        assert len(entries) == 21
        assert len({len(key) for key in entries}) == 1


@pytest.mark.parametrize(
    "name",
    ["z" * 2_000_000, [0] * 500_000, "z" * 49],
    ids=["a 2 MB name", "a list of 500,000 items", "51 characters quoted"],
)
def test_an_unknown_action_is_quoted_by_its_first_50_characters(api, name):
    """An unknown ``action`` was quoted whole in the refusal: a 2 MB name answered 2 MB, a
    list 1.5 times its JSON. It is quoted as the query language quotes a value, by its
    first 50 characters."""
    book = Book.objects.create(title="t", isbn="1", author=AuthorFactory(), pages=1)
    body = json.dumps({"action": name})
    response = api.post(f"/api/books/{book.pk}/action/", body, content_type="application/json")
    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert details == {"action": [f"Unknown action {repr(name)[:50]}…. Allowed actions: shout."]}
    assert len(response.content) < 1000


@pytest.mark.parametrize("name", ["discount", "z" * 48], ids=["short", "50 characters quoted"])
def test_a_short_unknown_action_is_quoted_whole(api, name):
    book = Book.objects.create(title="t", isbn="1", author=AuthorFactory(), pages=1)
    body = json.dumps({"action": name})
    response = api.post(f"/api/books/{book.pk}/action/", body, content_type="application/json")
    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert details == {"action": [f"Unknown action {name!r}. Allowed actions: shout."]}


def _holder_refusal(api, settings, body, bulk=False):
    """The ``details`` of a refused create (or bulk create) of a RefHolder."""
    path = "/cost/bulk-ref-holders/bulk/" if bulk else "/cost/ref-holders/"
    data = {"items": [{"name": "s", **body}]} if bulk else {"name": "s", **body}
    with site_mounted(settings, "cost", cost_site):
        response = api.post(path, json.dumps(data), content_type="application/json")
    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert not RefHolder.objects.exists()
    return details["items"]["0"] if bulk else details


NOT_A_UUID = "\u201cnope\u201d is not a valid UUID."


@pytest.mark.parametrize(
    ("body", "bulk"),
    [({"things": ["T", "nope"]}, False), ({"thing": "nope"}, False), ({"thing": "nope"}, True)],
    ids=["a list", "one relation", "one relation in a bulk write"],
)
def test_an_id_its_pk_field_cannot_parse_is_refused_with_drfs_own_message(
    api, settings, body, bulk
):
    """DRF refuses an id the related pk field cannot parse with that field's message (a
    UUID's "is not a valid UUID"), and so does one relation here; a ``many=True`` list read
    500 ids to a query, and a bulk write's preloaded ids, answered "Incorrect type"
    instead, a message DRF gives for another mistake."""
    thing = UuidThing.objects.create(name="t")
    body = {
        k: [str(thing.pk) if i == "T" else i for i in v] if isinstance(v, list) else v
        for k, v in body.items()
    }
    details = _holder_refusal(api, settings, body, bulk)
    assert details == {next(iter(body)): [NOT_A_UUID]}


def test_a_null_id_is_no_row_even_beside_a_row_whose_text_pk_is_none(api, settings):
    """Rows read for a list were found by their pk as text, and ``null`` as text is
    ``"None"``: with a row of text pk ``"None"`` named too, ``null`` was that row. DRF
    refuses ``null`` as no row."""
    CodeThing.objects.create(code="None", name="n")
    details = _holder_refusal(api, settings, {"codes": ["None", None]})
    assert details == {"codes": ['Invalid pk "None" - object does not exist.']}


TEXT_IDS_NO_DATABASE_MATCHES = [
    ("a\x00", 'Invalid pk "a\x00" - object does not exist.'),
    ("\ud800", "Incorrect type. Expected pk value, received str."),
]


@pytest.mark.parametrize(
    ("value", "message"), TEXT_IDS_NO_DATABASE_MATCHES, ids=["NUL", "surrogate"]
)
@pytest.mark.parametrize("how", ["one", "many", "bulk"])
def test_a_text_id_no_database_can_match_is_refused_not_a_500(api, settings, value, message, how):
    """A text id holding a NUL character (which PostgreSQL refuses to compare: a 500, in
    DRF's own lookup too) or a lone surrogate (no driver encodes it: a 500 once a list's
    ids were read 500 to a query, and in a bulk write's preload) is refused as DRF refuses
    it on SQLite."""
    CodeThing.objects.create(code="a", name="a")
    if how == "many":
        details = _holder_refusal(api, settings, {"codes": ["a", value]})
        assert details == {"codes": [message]}
    else:
        details = _holder_refusal(api, settings, {"code": value}, bulk=how == "bulk")
        assert details == {"code": [message]}


@pytest.mark.parametrize("bulk", [False, True], ids=["a list", "a bulk write"])
def test_an_id_beyond_a_float_is_no_row_as_for_one_relation(api, settings, bulk):
    """JSON's ``1e999`` is a float infinity, which no integer pk parses (``OverflowError``):
    one relation answers "does not exist" (:class:`ArcPrimaryKeyRelatedField`); a
    ``many=True`` list read 500 ids to a query, and a bulk write's preloaded ids, answered
    "Incorrect type" instead."""
    author = AuthorFactory()
    if bulk:
        item = '{"title": "t", "isbn": "1", "author": 1e999}'
        path, body, name = "/api/bulk-books/bulk/", f'{{"items": [{item}]}}', "author"
    else:
        group = Group.objects.create(name="g")
        body = f'{{"username": "u", "groups": [{group.pk}, 1e999]}}'
        path, name = "/cost/grouped-users/", "groups"
    api.force_authenticate(User.objects.create(username="caller"))
    with site_mounted(settings, "cost", cost_site):
        response = api.post(path, body, content_type="application/json")
    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    details = details["items"]["0"] if bulk else details
    assert details == {name: ['Invalid pk "inf" - object does not exist.']}
    assert not User.objects.filter(username="u").exists()
    assert not Book.objects.filter(author=author).exists()


@pytest.mark.parametrize("bulk", [False, True], ids=["a list", "a bulk write"])
def test_a_decimal_pk_finds_its_row_however_it_is_spelt(api, settings, bulk):
    """Rows read for a list (and preloaded by a bulk write) were found by their pk as text:
    a decimal pk is answered with the column's scale (``"1.00"``), so ``1`` or ``"1.0"``
    sent found no row ("does not exist"), where DRF's lookup (and one relation) compares
    numbers."""
    DecimalThing.objects.create(number="1.00")
    with site_mounted(settings, "cost", cost_site):
        if bulk:
            items = [{"name": f"s{i}", "number": n} for i, n in enumerate([1, "1.0", "1.00"])]
            response = api.post(
                "/cost/bulk-ref-holders/bulk/",
                json.dumps({"items": items}),
                content_type="application/json",
            )
        else:
            item = {"name": "s", "numbers": [1, "1.0", "1.00"]}
            response = api.post(
                "/cost/ref-holders/", json.dumps(item), content_type="application/json"
            )
    assert response.status_code == 201, response.content
    if bulk:
        assert [str(s.number_id) for s in RefHolder.objects.order_by("name")] == ["1.00"] * 3
    else:
        numbers = RefHolder.objects.get().numbers.values_list("pk", flat=True)
        assert [str(n) for n in numbers] == ["1.00"]


@pytest.mark.parametrize("fmt", ["multipart", "form"])
def test_a_form_body_sets_a_many_to_many_list_as_drf_reads_it(api, settings, fmt):
    """A form (the browsable API's, or any urlencoded or multipart body) sends a list as
    the field named once per value, which DRF reads with ``getlist()``. The body was made a
    dict of each name's last value first: one group was ``"Expected a list of items but got
    type "str""`` and two were refused the same way, so no form could set a many-to-many
    relation, nor an action's list."""
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    user = User.objects.create(username="u")
    encode = (
        (lambda d: {"data": d, "format": "multipart"})
        if fmt == "multipart"
        else (
            lambda d: {
                "data": urlencode(d, doseq=True),
                "content_type": "application/x-www-form-urlencoded",
            }
        )
    )
    with site_mounted(settings, "cost", cost_site):
        two = api.patch(
            f"/cost/grouped-users/{user.pk}/", **encode({"groups": [groups[0].pk, groups[2].pk]})
        )
        assert two.status_code == 200, two.content
        assert sorted(two.json()["data"]["groups"]) == [groups[0].pk, groups[2].pk]
        one = api.patch(f"/cost/grouped-users/{user.pk}/", **encode({"groups": [groups[1].pk]}))
        assert one.status_code == 200, one.content
        assert one.json()["data"]["groups"] == [groups[1].pk]
        created = api.post(
            "/cost/grouped-users/", **encode({"username": "v", "groups": [groups[0].pk]})
        )
        assert created.status_code == 201, created.content
        assert created.json()["data"]["groups"] == [groups[0].pk]
        joined = api.post(
            f"/cost/grouped-users/{user.pk}/action/",
            **encode(
                {"action": "join", "groups": [groups[0].pk, groups[1].pk], "tags": ["a", "b"]}
            ),
        )
        assert joined.status_code == 200, joined.content
        assert joined.json()["data"] == {"groups": [groups[0].pk, groups[1].pk], "tags": ["a", "b"]}
    assert list(user.groups.values_list("pk", flat=True)) == [groups[1].pk]


def _statements(api, path, body):
    with CaptureQueriesContext(connection) as queries:
        response = api.post(path, json.dumps(body), content_type="application/json")
    return response, len(queries)


def test_a_projects_own_many_to_many_list_costs_the_same_statements_however_long_it_is(
    api, settings
):
    """DRF's ``PrimaryKeyRelatedField(many=True)`` declared by the project — in a
    ``serializer_class``, in an action's ``input`` — still looked each id up with a query of
    its own, where the generated serializer's read 500 to a query: ``{"groups": [1, 1, …]}``
    was a ``SELECT`` per item. It is read as the generated serializer's is."""
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    ids = [g.pk for g in groups]
    user = User.objects.create(username="member")
    action = f"/cost/grouped-users/{user.pk}/action/"
    with site_mounted(settings, "cost", cost_site):
        short, short_sql = _statements(api, "/cost/team-users/", {"username": "s", "groups": ids})
        long, long_sql = _statements(
            api, "/cost/team-users/", {"username": "l", "groups": ids * 1000}
        )
        assert short.status_code == long.status_code == 201, long.content
        assert long_sql == short_sql
        assert sorted(long.json()["data"]["groups"]) == ids
        body = {"action": "join", "tags": []}
        few, few_sql = _statements(api, action, {**body, "groups": ids})
        many, many_sql = _statements(api, action, {**body, "groups": ids * 1000})
        assert few.status_code == many.status_code == 200, many.content
        assert many_sql == few_sql
        assert many.json()["data"]["groups"] == ids * 1000


@pytest.mark.parametrize(
    "value",
    ["missing", "x", True, [1], {}, None, 2**70, "1.5"],
    ids=["missing", "text", "bool", "list", "dict", "null", "beyond int64", "fraction"],
)
@pytest.mark.parametrize("where", ["serializer_class", "action input"])
def test_a_projects_own_many_to_many_list_is_refused_with_drfs_own_messages(
    api, settings, value, where
):
    """The project's relation, read 500 ids to a query, refuses what DRF's refuses, with
    DRF's message for the first bad item; a value that is no list, too."""
    group = Group.objects.create(name="g")
    user = User.objects.create(username="member")
    bad = group.pk + 1000 if value == "missing" else value
    for groups in ([group.pk, bad, group.pk], "not a list", [bad]):
        if value == 2**70 and groups != "not a list":
            # DRF's lookup on Django 4.2's SQLite raises OverflowError (a 500); Django 5
            # answers no row, as django-arc's relations do everywhere
            expected = {"groups": [f'Invalid pk "{2**70}" - object does not exist.']}
        else:
            drf = JoinInput(data={"groups": groups, "tags": []})
            assert not drf.is_valid()
            expected = {"groups": drf.errors["groups"]}
        with site_mounted(settings, "cost", cost_site):
            if where == "serializer_class":
                body = {"username": "u", "groups": groups}
                response = api.post("/cost/team-users/", body, format="json")
            else:
                body = {"action": "join", "tags": [], "groups": groups}
                response = api.post(f"/cost/grouped-users/{user.pk}/action/", body, format="json")
        assert assert_error(response, 400, "VALIDATION_ERROR")["details"] == expected
    assert not User.objects.filter(username="u").exists()


class CodesInput(serializers.Serializer):
    codes = serializers.PrimaryKeyRelatedField(many=True, queryset=CodeThing.objects.all())


@pytest.mark.parametrize("how", ["many", "bulk"])
def test_a_text_id_sent_as_a_list_or_an_object_is_read_as_drf_reads_it(api, settings, how):
    """DRF's lookup of a text pk reads any value as its text: ``{}`` names the row whose pk
    is ``"{}"``, ``[1]`` the row ``"[1]"``. A ``many=True`` list read 500 ids to a query,
    and a bulk write's preloaded ids, left a list or an object out of the ids read, and
    answered "does not exist"."""
    for code in ("{}", "[1]", "{'a': 1}"):
        CodeThing.objects.create(code=code, name=code)
    sent = [{}, [1], {"a": 1}]
    drf = CodesInput(data={"codes": sent})
    assert drf.is_valid(), drf.errors
    expected = [row.pk for row in drf.validated_data["codes"]]
    assert expected == ["{}", "[1]", "{'a': 1}"]
    with site_mounted(settings, "cost", cost_site):
        if how == "many":
            response = api.post("/cost/ref-holders/", {"name": "h", "codes": sent}, format="json")
            assert response.status_code == 201, response.content
            assert sorted(response.json()["data"]["codes"]) == sorted(expected)
        else:
            items = [{"name": f"h{i}", "code": value} for i, value in enumerate(sent)]
            response = api.post("/cost/bulk-ref-holders/bulk/", {"items": items}, format="json")
            assert response.status_code == 201, response.content
            rows = RefHolder.objects.order_by("name")
            assert [row.code_id for row in rows] == expected
