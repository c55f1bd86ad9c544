"""fix-seen9b: what the last reviewers saw in the browsable API's forms and in uploads.

A relation's ``<select>`` nothing narrowed labels its rows by key only; a form body's
many-to-many removes no row its form did not offer; a keyed write answered 5xx removes
its file; an upload on a storage that overwrites never takes a name a row holds."""

from __future__ import annotations

import re

import django
import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import OrderBy
from django.db.models.functions import Length, Random
from django.http import JsonResponse
from django.test.utils import CaptureQueriesContext
from django.urls import clear_url_caches, include, path
from rest_framework import serializers
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Article, Attachment

pytestmark = pytest.mark.django_db

_FS9B_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}
_FS9B_HTML = {"HTTP_ACCEPT": "text/html"}

fs9b_site = ResourceSite(name="fix-seen9b")


def _fs9b_upload(name: str, content: bytes = b"content") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/plain")


def _fs9b_stored(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def _fs9b_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False
    return api


# -- uploads -------------------------------------------------------------------------------


@fs9b_site.register
class _Fs9bKeyedAttachments(Resource):
    """Keyed routes that store a file, then answer 503 (a handler's own failure answer)."""

    model = Attachment
    name = "fs9b-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = _FS9B_MEMBERS
    idempotent = True

    @action(permissions=P.require_org_membership())
    def store_then_fail(self, request, instance, data):
        instance.file = request.FILES["file"]
        instance.save()
        return JsonResponse({"detail": "the mail server is down"}, status=503)

    @route("POST", "import", permissions=P.require_org_membership())
    def import_then_fail(self, request):
        Attachment.objects.create(
            organization_id=request.headers["X-Organization-Id"],
            name="imported",
            file=request.FILES["file"],
        )
        return JsonResponse({"detail": "the mail server is down"}, status=503)


@pytest.fixture
def fs9b_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = "/media/"
    with site_mounted(settings, "fs9b", fs9b_site):
        yield tmp_path


@pytest.mark.parametrize("key", [None, "fs9b-key"], ids=["unkeyed", "keyed"])
def test_fs9b_a_keyed_write_answered_5xx_leaves_no_file_in_storage(fs9b_media, key):
    """Under an ``Idempotency-Key`` a route's or action's 5xx gives the key up and rolls its
    writes back (SPEC §10), but the files they stored were judged before that rollback,
    while the rows naming them still waited to commit: kept, so the file stayed in storage
    named by no row. A keyed 5xx now removes them as an unkeyed refusal does; unkeyed, a
    handler's 5xx is its answer and its writes commit with their files."""
    org = OrganizationFactory()
    api = _fs9b_member(org)
    row = Attachment.objects.create(organization=org, name="a")
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    r = api.post(
        f"/fs9b/fs9b-attachments/{row.pk}/action/",
        {"action": "store_then_fail", "file": _fs9b_upload("act.txt")},
        format="multipart",
        **headers,
    )
    assert r.status_code == 503, r.content
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key + "-route"}
    r = api.post(
        "/fs9b/fs9b-attachments/import/",
        {"file": _fs9b_upload("route.txt")},
        format="multipart",
        **headers,
    )
    assert r.status_code == 503, r.content
    names = sorted(n for n in Attachment.objects.values_list("file", flat=True) if n)
    if key is None:
        assert names == ["attachments/act.txt", "attachments/route.txt"]
    else:
        assert names == []
    assert _fs9b_stored(fs9b_media) == names


class _Fs9bCreatedAttachments(Resource):
    model = Attachment
    name = "fs9b-created-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = _FS9B_MEMBERS
    idempotent = True


class _Fs9bCreateThenFail(_Fs9bCreatedAttachments.as_viewset()):
    """A project's ``create()`` answering a 5xx of its own after the row (and its file)
    was saved."""

    def create(self, request, *args, **kwargs):
        super().create(request, *args, **kwargs)
        return Response({"detail": "the mail server is down"}, status=503)


@pytest.mark.parametrize("key", [None, "fs9b-create"], ids=["unkeyed", "keyed"])
def test_fs9b_a_keyed_create_answering_5xx_after_its_save_leaves_no_file(settings, tmp_path, key):
    """The same for a project's ``create()`` answering a 5xx after saving: under a key its
    writes are rolled back with the request's transaction, after the write that stored the
    file had judged it kept."""
    settings.MEDIA_ROOT = str(tmp_path)
    router = SimpleRouter()
    router.register("fs9b-created", _Fs9bCreateThenFail, basename="fs9b-created")
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": [path("x/", include(router.urls))]})
    clear_url_caches()
    try:
        org = OrganizationFactory()
        api = _fs9b_member(org)
        headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
        r = api.post(
            "/x/fs9b-created/",
            {"name": "a", "file": _fs9b_upload("created.txt")},
            format="multipart",
            **headers,
        )
    finally:
        clear_url_caches()
    assert r.status_code == 503, r.content
    names = [n for n in Attachment.objects.values_list("file", flat=True) if n]
    assert names == ([] if key else ["attachments/created.txt"])
    assert _fs9b_stored(tmp_path) == names


# -- a form's many-to-many -----------------------------------------------------------------


def _fs9b_groups_users(name: str, queryset) -> None:
    """Register ``name``: users whose form offers ``queryset``'s groups, the first two of
    them (``html_cutoff``)."""

    class GroupsSerializer(serializers.ModelSerializer):
        groups = serializers.PrimaryKeyRelatedField(many=True, queryset=queryset, html_cutoff=2)

        class Meta:
            model = User
            fields = ["id", "username", "groups"]

    fs9b_site.register(
        type(
            f"Fs9bGroupsUsers_{name}",
            (Resource,),
            {
                "__module__": __name__,
                "model": User,
                "name": name,
                "serializer_class": GroupsSerializer,
                "permissions": {k: P.allow_public() for k in ("list", "get", "create", "update")},
            },
        )
    )


# offered among the "team" groups only
_fs9b_groups_users(
    "fs9b-team-users", Group.objects.filter(name__startswith="team").order_by("name")
)


def _fs9b_select_reads(api, url: str) -> list[list[str]]:
    """The row's form at ``url`` sent back as shown (both 200): the SQL of each request's
    reads of the select's first rows (the sliced reads of groups), the page's then the
    update's; neither is empty."""
    with CaptureQueriesContext(connection) as rendered:
        page = api.get(url, **_FS9B_HTML)
    assert page.status_code == 200, page.content
    with CaptureQueriesContext(connection) as sent:
        answer = api.put(url, _fs9b_browser_post(page, "PUT"), format="multipart")
    assert answer.status_code == 200, answer.content
    found = []
    for queries in (rendered.captured_queries, sent.captured_queries):
        reads = [
            q["sql"]
            for q in queries
            if 'FROM "auth_group"' in q["sql"]
            and "LIMIT" in q["sql"]
            and "INNER JOIN" not in q["sql"]
        ]
        assert reads, [q["sql"] for q in queries]
        found.append(reads)
    return found


def _fs9b_form(page, method):
    html = page.content.decode()
    if method == "POST":
        form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)
    else:
        form = re.search(rf'<form [^>]*data-method="{method}"[^>]*>.*?</form>', html, re.S)
    return form[0] if form else None


def _fs9b_browser_post(page, method):
    """What a browser posts from ``method``'s form as shown: each input's value, each
    select's selected options, in page order."""
    form, body = _fs9b_form(page, method), {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or name[1] == "csrfmiddlewaretoken":
            continue
        value = re.search(r'value="([^"]*)"', tag)
        body.setdefault(name[1], []).append(value[1] if value else "")
    for name, options in re.findall(r'<select[^>]* name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        body.setdefault(name, []).extend(re.findall(r'<option value="([^"]*)"\s*selected', options))
    return body


@pytest.fixture
def fs9b_forms(settings, monkeypatch):
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    with site_mounted(settings, "fs9b", fs9b_site):
        yield client_for()


def test_fs9b_a_form_removes_no_group_its_select_did_not_offer(fs9b_forms):
    """A ``<select multiple>`` offers the relation's choices, the first ``html_cutoff`` of
    them: a user's group past the cutoff (``team-c``) is shown nowhere, so nothing is
    selected, and the form sent back as shown, its hidden blank read as "nothing selected",
    emptied the relation. A form body's list now sets the rows chosen among those its
    select offers; the rows the relation holds outside them stay."""
    api = fs9b_forms
    team = [Group.objects.create(name=f"team-{c}") for c in "abc"]
    user = User.objects.create(username="past-the-cutoff")
    user.groups.set([team[2]])
    url = f"/fs9b/fs9b-team-users/{user.pk}/"
    page = api.get(url, **_FS9B_HTML)
    assert page.status_code == 200, page.content
    body = _fs9b_browser_post(page, "PUT")
    assert body["groups"] == [""]  # the hidden blank: nothing selected
    sent = api.put(url, body, format="multipart")
    assert sent.status_code == 200, sent.content
    assert list(user.groups.all()) == [team[2]]
    # what the form offers is the caller's to change: chosen, deselected
    sent = api.put(url, {"groups": ["", str(team[0].pk)]}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert set(user.groups.all()) == {team[0], team[2]}
    sent = api.put(url, {"groups": [""]}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert list(user.groups.all()) == [team[2]]
    # a JSON body says the whole list, as DRF reads it
    assert api.patch(url, {"groups": []}, format="json").status_code == 200
    assert not user.groups.exists()


def test_fs9b_a_plain_form_post_removes_no_group_the_caller_is_not_offered(fs9b_forms):
    """A plain form ``PUT`` sending ``groups=`` (empty) emptied the relation, groups the
    relation hides from the caller (``staff``) included, which the caller can neither see
    nor name. It removes the offered ones only; the hidden group stays, and a body naming
    it is still refused as a row that does not exist."""
    api = fs9b_forms
    team, staff = Group.objects.create(name="team-a"), Group.objects.create(name="staff")
    user = User.objects.create(username="mixed")
    user.groups.set([team, staff])
    url = f"/fs9b/fs9b-team-users/{user.pk}/"
    sent = api.put(url, {"groups": ""}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert list(user.groups.all()) == [staff]
    sent = api.patch(url, "groups=", content_type="application/x-www-form-urlencoded")
    assert sent.status_code == 200, sent.content
    assert list(user.groups.all()) == [staff]
    sent = api.put(url, {"groups": [str(team.pk)]}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert set(user.groups.all()) == {team, staff}
    refused = api.put(url, {"groups": [str(staff.pk)]}, format="multipart")
    assert refused.status_code == 400, refused.content
    assert set(user.groups.all()) == {team, staff}


# -- a relation's labels -------------------------------------------------------------------


@fs9b_site.register
class _Fs9bOpenArticles(Resource):
    """No tenancy: a body may name any user and any organization."""

    model = Article
    name = "fs9b-open-articles"
    fields = ["id", "slug", "title", "organization", "owner"]
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update")}


@fs9b_site.register
class _Fs9bTenantArticles(Resource):
    """Tenancy narrows nothing of ``owner`` (``auth.User`` has no tenant column)."""

    model = Article
    name = "fs9b-tenant-articles"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.MultiTenant()]
    permissions = _FS9B_MEMBERS


class _Fs9bNamedOwner(serializers.PrimaryKeyRelatedField):
    """A project's own labels (DRF's seam for them): its choice to show."""

    def display_value(self, instance):
        return f"user {instance.username}"


class _Fs9bNamedOwnerSerializer(serializers.ModelSerializer):
    owner = _Fs9bNamedOwner(queryset=User.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Article
        fields = ["id", "slug", "title", "owner"]


@fs9b_site.register
class _Fs9bNamedOwnerArticles(Resource):
    model = Article
    name = "fs9b-named-owner-articles"
    serializer_class = _Fs9bNamedOwnerSerializer
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update")}


def _fs9b_options(page, method, name):
    select = re.search(rf'<select[^>]* name="{name}".*?</select>', _fs9b_form(page, method), re.S)
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select[0])
    return [(value, label.strip()) for value, label in options if value]


def test_fs9b_a_relation_nothing_narrowed_labels_its_rows_by_key_only(fs9b_forms):
    """On a resource without tenancy, the create form's ``<select>`` of a writable foreign
    key to ``auth.User`` or ``Organization`` listed every username and organization name
    to any caller who may create: the select offers what a body may name (every row: the
    keys), and its labels said more. A relation no preset narrowed labels each row by its
    key; one a preset narrowed (the caller's tenant's rows) keeps the rows' names, and so
    does a field defining its own ``display_value``."""
    ours, theirs = OrganizationFactory(name="Our org"), OrganizationFactory(name="Their org")
    stranger = User.objects.create(username="stranger-with-a-secret-name")
    member = MembershipFactory(organization=ours, role="member").user
    api = client_for(member)
    with_org = client_for(member, HTTP_X_ORGANIZATION_ID=str(ours.pk))
    pages = {
        "open-create": api.get("/fs9b/fs9b-open-articles/", **_FS9B_HTML),
        "tenant-create": with_org.get("/fs9b/fs9b-tenant-articles/", **_FS9B_HTML),
    }
    row = Article.objects.create(slug="a", title="A", organization=ours, owner=member)
    pages["open-row"] = api.get(f"/fs9b/fs9b-open-articles/{row.pk}/", **_FS9B_HTML)
    pages["tenant-row"] = with_org.get(f"/fs9b/fs9b-tenant-articles/{row.pk}/", **_FS9B_HTML)
    for what, page in pages.items():
        assert page.status_code == 200, (what, page.content)
        html = page.content.decode()
        for secret in ("stranger-with-a-secret-name", "Their org"):
            assert secret not in html, (what, secret)
        method = "POST" if what.endswith("create") else "PUT"
        owners = _fs9b_options(page, method, "owner")
        assert (str(stranger.pk), str(stranger.pk)) in owners, (what, owners)
        assert (str(member.pk), str(member.pk)) in owners, (what, owners)
    assert (str(theirs.pk), str(theirs.pk)) in _fs9b_options(
        pages["open-row"], "PUT", "organization"
    )
    # the row's owner is still the one selected
    select = re.search(
        r'<select[^>]* name="owner".*?</select>', _fs9b_form(pages["open-row"], "PUT"), re.S
    )
    assert re.findall(r'<option value="([^"]*)"\s*selected', select[0]) == [str(member.pk)]
    named = api.get("/fs9b/fs9b-named-owner-articles/", **_FS9B_HTML)
    assert (str(stranger.pk), "user stranger-with-a-secret-name") in _fs9b_options(
        named, "POST", "owner"
    )


# -- storages that overwrite ---------------------------------------------------------------


class _Fs9bOverwritingStorage(FileSystemStorage):
    """A storage writing over a name taken (django-storages' S3 default, as a project's
    ``OverwriteStorage`` recipe does it on every Django), saying so as S3's does."""

    file_overwrite = True

    def get_available_name(self, name, max_length=None):
        if self.exists(name):
            self.delete(name)
        return name


@pytest.mark.parametrize("flag", ["file_overwrite", "allow_overwrite"])
def test_fs9b_an_upload_never_overwrites_the_file_a_row_names(fs9b_media, settings, flag):
    """On a storage that overwrites, an upload named as a row's file was stored over it
    before the write was judged: refused, its row rolled back, the other row named the
    refused upload's bytes; accepted, another row's file changed under it. An upload whose
    name a row holds gets the storage's alternative name; the row's file keeps its bytes."""
    if flag == "allow_overwrite":
        if django.VERSION < (5, 1):
            pytest.skip("FileSystemStorage(allow_overwrite) is Django 5.1+")
        backend = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"allow_overwrite": True},
        }
    else:
        backend = {"BACKEND": f"{__name__}._Fs9bOverwritingStorage"}
    settings.STORAGES = {**settings.STORAGES, "default": backend}
    org = OrganizationFactory()
    api = _fs9b_member(org)
    first = Attachment.objects.create(organization=org, name="first")
    first.file.save("same.txt", ContentFile(b"first's bytes"))
    assert first.file.name == "attachments/same.txt"
    refused = api.post(
        f"/fs9b/fs9b-attachments/{first.pk}/action/",
        {"action": "store_then_fail", "file": _fs9b_upload("same.txt", b"refused bytes")},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="fs9b-overwrite",
    )
    assert refused.status_code == 503, refused.content
    assert (fs9b_media / "attachments" / "same.txt").read_bytes() == b"first's bytes"
    assert _fs9b_stored(fs9b_media) == ["attachments/same.txt"]
    second = Attachment.objects.create(organization=org, name="second")
    accepted = api.post(
        f"/fs9b/fs9b-attachments/{second.pk}/action/",
        {"action": "store_then_fail", "file": _fs9b_upload("same.txt", b"second's bytes")},
        format="multipart",
    )
    assert accepted.status_code == 503, accepted.content  # unkeyed: its writes stand
    second.refresh_from_db()
    assert second.file.name.startswith("attachments/same_") and second.file.name.endswith(".txt")
    assert second.file.read() == b"second's bytes"
    first.refresh_from_db()
    assert first.file.read() == b"first's bytes"
    # a name no row holds is stored as named, as the storage does
    third = Attachment.objects.create(organization=org, name="third")
    api.post(
        f"/fs9b/fs9b-attachments/{third.pk}/action/",
        {"action": "store_then_fail", "file": _fs9b_upload("other.txt")},
        format="multipart",
    )
    third.refresh_from_db()
    assert third.file.name == "attachments/other.txt"


# in no order of their own
_fs9b_groups_users("l51-team-users", Group.objects.filter(name__startswith="team"))


def test_lead51_a_select_past_its_cutoff_offers_and_checks_the_same_rows_in_pk_order(
    fs9b_forms,
):
    """``auth.Group`` has no ``Meta.ordering``: the first ``html_cutoff`` rows a form's
    select offers were read unordered when the page was rendered and again when the form
    came back, and PostgreSQL may slice an unordered query differently each time, so a group
    the form never showed could count as offered, and the update would remove it. Both
    reads take the rows in primary-key order."""
    api = fs9b_forms
    team = [Group.objects.create(name=f"team-{c}") for c in "abc"]
    user = User.objects.create(username="ordered")
    user.groups.set([team[2]])
    url = f"/fs9b/l51-team-users/{user.pk}/"
    reads_of_both = _fs9b_select_reads(api, url)
    assert list(user.groups.all()) == [team[2]]
    for reads in reads_of_both:
        assert all(re.search(r'ORDER BY ("auth_group"\."id"|1) ASC', sql) for sql in reads), reads


# ordered by a column that ties (the name's length)
_fs9b_groups_users(
    "rf52-tied-users", Group.objects.filter(name__startswith="tie").order_by(Length("name"))
)


def test_rf52_a_select_past_its_cutoff_ordered_by_a_tying_column_breaks_ties_by_pk(fs9b_forms):
    """A relation ordered by a column that ties (every "tie" group's name is as long) is
    ordered, so both reads of its first ``html_cutoff`` rows (the page, the form sent
    back) took them as PostgreSQL sorts ties, which nothing fixes between two queries (a
    row updated in between moves in the table): a group the form never showed could count
    as offered and the update remove it, as for an unordered relation (lead51). Both reads
    break the ties by primary key."""
    api = fs9b_forms
    ties = [Group.objects.create(name=f"tie-{c}") for c in "abc"]
    user = User.objects.create(username="tied")
    user.groups.set([ties[2]])
    url = f"/fs9b/rf52-tied-users/{user.pk}/"
    reads_of_both = _fs9b_select_reads(api, url)
    assert list(user.groups.all()) == [ties[2]]
    for reads in reads_of_both:
        assert all(
            re.search(r'ORDER BY LENGTH\([^;]*\) ASC, ("auth_group"\."id"|1) ASC', sql)
            for sql in reads
        ), reads


# one per name (``DISTINCT ON``, PostgreSQL's), unordered
_fs9b_groups_users(
    "rf53-distinct-users", Group.objects.filter(name__startswith="dst").distinct("name")
)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="DISTINCT ON is PostgreSQL's")
def test_rf53_a_select_over_a_distinct_on_relation_renders_and_its_form_saves(fs9b_forms):
    """A relation whose queryset is ``distinct()`` on fields and has no order was put in
    order by primary key alone for its ``<select>``: PostgreSQL refuses a ``DISTINCT ON``
    not leading the ``ORDER BY``, so the form page and its update were a 500. The order
    starts with the distinct fields, then the primary key."""
    api = fs9b_forms
    groups = [Group.objects.create(name=f"dst-{c}") for c in "abc"]
    user = User.objects.create(username="distinct")
    user.groups.set([groups[0]])
    url = f"/fs9b/rf53-distinct-users/{user.pk}/"
    page = api.get(url, **_FS9B_HTML)
    assert page.status_code == 200, page.content
    answer = api.put(url, _fs9b_browser_post(page, "PUT"), format="multipart")
    assert answer.status_code == 200, answer.content
    assert list(user.groups.all()) == [groups[0]]


# in a random order (``order_by("?")``)
_fs9b_groups_users("rf53-random-users", Group.objects.filter(name__startswith="rnd").order_by("?"))


def test_rf53_a_select_over_a_randomly_ordered_relation_offers_the_same_rows_twice(fs9b_forms):
    """A relation ordered at random (``order_by("?")``) is "ordered", so the select's two
    reads of its first ``html_cutoff`` rows (the page, then the form sent back) each drew
    their own: a group the page never showed could count as offered when the form came
    back, and the update removed it from the user. Both reads are by primary key."""
    api = fs9b_forms
    groups = [Group.objects.create(name=f"rnd-{c}") for c in "abcde"]
    user = User.objects.create(username="random")
    user.groups.set([groups[4]])
    url = f"/fs9b/rf53-random-users/{user.pk}/"
    reads_of_both = _fs9b_select_reads(api, url)
    assert list(user.groups.all()) == [groups[4]]
    for reads in reads_of_both:
        assert all(re.search(r'ORDER BY ("auth_group"\."id"|1) ASC', sql) for sql in reads), reads
        assert not any("RAND" in sql.upper() for sql in reads), reads


# fix-seen10a: in a random order given as an expression (``OrderBy(Random())``), alone or
# after another term
_fs9b_groups_users(
    "fs10a-random-expr-users",
    Group.objects.filter(name__startswith="rnx").order_by(OrderBy(Random())),
)
_fs9b_groups_users(
    "fs10a-random-after-users",
    Group.objects.filter(name__startswith="rnx").order_by(Length("name"), Random().desc()),
)


@pytest.mark.parametrize("name", ["fs10a-random-expr-users", "fs10a-random-after-users"])
def test_fs10a_a_select_ordered_by_a_random_expression_offers_the_same_rows_twice(fs9b_forms, name):
    """rev-fixes53 dropped the string ``"?"`` from a select's order, but a relation ordered
    by the expression ``OrderBy(Random())`` (or ``Random().desc()``, which is one) kept it:
    the page and the form sent back each drew their own first ``html_cutoff`` rows, so a
    group the page never showed could count as offered and the update remove it. The
    random term is dropped whatever its spelling; the other terms stay, then the primary
    key."""
    api = fs9b_forms
    groups = [Group.objects.create(name=f"rnx-{c}") for c in "abcde"]
    user = User.objects.create(username=name[:30])
    user.groups.set([groups[4]])
    reads_of_both = _fs9b_select_reads(api, f"/fs9b/{name}/{user.pk}/")
    assert list(user.groups.all()) == [groups[4]]
    for reads in reads_of_both:
        assert all(re.search(r'("auth_group"\."id"|1) ASC', sql) for sql in reads), reads
        assert not any("RAND" in sql.upper() for sql in reads), reads


class _Fs10aFreshQuerysets(presets.Preset):
    """A project preset whose ``related_queryset`` returns a new queryset that narrows
    nothing: the model's every row (``all_rows``), or the one given, cloned."""

    def __init__(self, all_rows: bool) -> None:
        self.all_rows = all_rows

    def related_queryset(self, view, queryset):
        return queryset.model._default_manager.all() if self.all_rows else queryset.all()


for _fs10a_all_rows in (True, False):
    fs9b_site.register(
        type(
            f"_Fs10aFreshArticles{_fs10a_all_rows}",
            (Resource,),
            {
                "__module__": __name__,
                "model": Article,
                "name": f"fs10a-fresh-articles-{'all' if _fs10a_all_rows else 'clone'}",
                "fields": ["id", "slug", "title", "organization", "owner"],
                "presets": [_Fs10aFreshQuerysets(_fs10a_all_rows)],
                "permissions": {k: P.require_auth() for k in ("list", "get", "create")},
            },
        )
    )


@pytest.mark.parametrize("shape", ["all", "clone"])
def test_fs10a_a_presets_new_but_unfiltered_queryset_leaves_the_select_labelled_by_key(
    fs9b_forms, shape
):
    """Whether a preset narrowed a relation was told by the object ``related_queryset``
    returned: a project preset returning a new queryset that filters nothing (the model's
    ``all()``, the given one cloned) counted as narrowed, and the form's select listed
    every username and organization name, those of rows the caller may not read. Its WHERE
    is compared now: an unfiltered queryset is unnarrowed, its options labelled by key."""
    ours, theirs = OrganizationFactory(name="Our org"), OrganizationFactory(name="Their org")
    stranger = User.objects.create(username="stranger-with-a-secret-name")
    member = MembershipFactory(organization=ours, role="member").user
    page = client_for(member).get(f"/fs9b/fs10a-fresh-articles-{shape}/", **_FS9B_HTML)
    assert page.status_code == 200, page.content
    html = page.content.decode()
    for secret in ("stranger-with-a-secret-name", "Their org", "Our org"):
        assert secret not in html, secret
    assert (str(stranger.pk), str(stranger.pk)) in _fs9b_options(page, "POST", "owner")
    assert (str(theirs.pk), str(theirs.pk)) in _fs9b_options(page, "POST", "organization")
