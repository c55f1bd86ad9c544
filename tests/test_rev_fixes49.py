"""rev-fixes49: review of the merges of fix-seen9a (bulk writes) and fix-seen9b (browsable
forms, uploads), and the lead's ``f5fcc64`` (a file stored under an upload's name counts as
held on an overwriting storage)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Prefetch
from rest_framework import serializers
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Attachment

pytestmark = pytest.mark.django_db

rf49_site = ResourceSite(name="rf49")


@rf49_site.register
class Rf49AttachmentResource(Resource):
    model = Attachment
    name = "rf49-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = {key: P.require_org_membership() for key in ("list", "get", "create")}


class Rf49StorageUnreachable(Exception):
    """What a cloud storage's client raises when it may store but not look (S3 answering a
    ``HeadObject`` 403 to a key allowed ``PutObject`` only)."""


class Rf49BlindOverwritingStorage(FileSystemStorage):
    """An overwriting storage (django-storages' ``file_overwrite``) whose ``exists`` fails:
    it stores under the name asked without looking, as S3's does."""

    file_overwrite = True

    def get_available_name(self, name, max_length=None):
        return name

    def exists(self, name):
        raise Rf49StorageUnreachable("403 Forbidden (HeadObject)")


@pytest.fixture
def rf49_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = "/media/"
    with site_mounted(settings, "rf49", rf49_site):
        yield tmp_path


def _rf49_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False
    return api


def test_rf49_an_upload_on_a_storage_that_cannot_look_is_still_stored(rf49_media, settings):
    """``f5fcc64`` asks an overwriting storage whether a file is stored under an upload's
    name before every upload; a storage whose ``exists`` raises (an S3 key allowed to put
    objects but not to read them) turned every upload into a 500, where it was stored
    before. It is stored, under a name of its own: whether the name is taken is unknown."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_rev_fixes49.Rf49BlindOverwritingStorage"},
    }
    org = OrganizationFactory()
    api = _rf49_member(org)
    upload = SimpleUploadedFile("report.txt", b"stored", content_type="text/plain")
    r = api.post("/rf49/rf49-attachments/", {"name": "a", "file": upload}, format="multipart")
    assert r.status_code == 201, r.content
    stored = Attachment.objects.get().file.name
    assert stored.startswith("attachments/report") and stored.endswith(".txt")
    assert (rf49_media / stored).read_bytes() == b"stored"


# -- a form's many-to-many over a row whose relation the resource prefetches narrowed --------


class Rf49TeamGroupsSerializer(serializers.ModelSerializer):
    """A user's groups, offered among the "team" groups only."""

    groups = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Group.objects.filter(name__startswith="team").order_by("name")
    )

    class Meta:
        model = User
        fields = ["id", "username", "groups"]


@rf49_site.register
class Rf49TeamUsersResource(Resource):
    """Reads show a user's "team" groups only: the resource's queryset prefetches them so
    (a project hiding the rows a caller may not see from its answers)."""

    model = User
    name = "rf49-team-users"
    serializer_class = Rf49TeamGroupsSerializer
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update")}

    def get_queryset(self, request):
        shown = Group.objects.filter(name__startswith="team")
        return super().get_queryset(request).prefetch_related(Prefetch("groups", queryset=shown))


@pytest.fixture
def rf49_forms(settings, monkeypatch):
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    with site_mounted(settings, "rf49", rf49_site):
        yield client_for()


def test_rf49_a_form_keeps_the_group_a_prefetch_hides_from_the_row(rf49_forms):
    """``keep_unoffered_rows`` read the rows a form update's row holds through the row as
    the resource's queryset loaded it: a ``Prefetch`` narrowing the relation (the rows the
    resource shows) hid the very rows the form never offered, so a plain form ``groups=``
    still removed the group the caller can neither see nor name. The rows held are read
    from the table."""
    api = rf49_forms
    team, staff = Group.objects.create(name="team-a"), Group.objects.create(name="staff")
    user = User.objects.create(username="rf49-mixed")
    user.groups.set([team, staff])
    url = f"/rf49/rf49-team-users/{user.pk}/"
    sent = api.put(url, {"groups": ""}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert list(user.groups.all()) == [staff]
    sent = api.put(url, {"groups": [str(team.pk)]}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert set(user.groups.all()) == {team, staff}


# -- an upload_to that ignores the file's name --------------------------------------------


class Rf49CountingOverwritingStorage(FileSystemStorage):
    """An overwriting storage (``file_overwrite``, as S3's) counting what it is asked: each
    ``exists`` a round trip to the bucket."""

    file_overwrite = True
    asked: list[str] = []

    def get_available_name(self, name, max_length=None):
        if super().exists(name):
            self.delete(name)
        return name

    def exists(self, name):
        type(self).asked.append(name)
        return super().exists(name)


def _rf49_fixed_name(instance, filename):
    return f"fixed/{instance.name}.txt"


def test_rf49_an_upload_to_ignoring_the_name_costs_no_hundred_round_trips(
    rf49_media, settings, monkeypatch
):
    """On an overwriting storage, an upload whose name a row holds is given another name;
    an ``upload_to`` callable that names the file by the row only (``fixed/<name>.txt``)
    gives every alternative the same name, which ``_unheld_name`` tried a hundred times:
    a hundred ``exists`` round trips to the storage and a hundred queries for one upload,
    for a name that could never change. It gives up at the first alternative that is the
    name itself."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_rev_fixes49.Rf49CountingOverwritingStorage"},
    }
    monkeypatch.setattr(Attachment._meta.get_field("file"), "upload_to", _rf49_fixed_name)
    monkeypatch.setattr(Rf49CountingOverwritingStorage, "asked", [])
    org = OrganizationFactory()
    api = _rf49_member(org)
    first = SimpleUploadedFile("one.txt", b"one", content_type="text/plain")
    r = api.post("/rf49/rf49-attachments/", {"name": "a", "file": first}, format="multipart")
    assert r.status_code == 201, r.content
    assert Attachment.objects.get().file.name == "fixed/a.txt"
    Rf49CountingOverwritingStorage.asked.clear()
    again = SimpleUploadedFile("two.txt", b"two", content_type="text/plain")
    r = api.post("/rf49/rf49-attachments/", {"name": "a", "file": again}, format="multipart")
    assert r.status_code == 201, r.content
    assert len(Rf49CountingOverwritingStorage.asked) <= 2, len(Rf49CountingOverwritingStorage.asked)


# -- an upload named with a directory ----------------------------------------------------

RF49_LONG = "r" * 80  # "attachments/sub/" + 80 + ".txt": the field's max_length, 100


@rf49_site.register
class Rf49SubdirFileResource(Resource):
    """A resource whose hook gives each row a file the project names under a directory of
    its own (``sub/…``), as a generated report is."""

    model = Attachment
    name = "rf49-subdir"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = {key: P.require_org_membership() for key in ("list", "get", "create")}

    def before_create(self, request, data):
        return {**data, "file": ContentFile(b"generated", name=f"sub/{RF49_LONG}.txt")}


def test_rf49_a_renamed_upload_under_a_directory_keeps_within_max_length(rf49_media, settings):
    """The alternative name an overwriting storage's upload gets was measured against the
    field's ``max_length`` (and asked about) without the directory the upload's own name
    carries (``sub/``), then stored under that directory: a name at the limit came out
    longer than the column holds (PostgreSQL refuses it, a 500; SQLite stores it)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_rev_fixes49.Rf49CountingOverwritingStorage"},
    }
    org = OrganizationFactory()
    held = Attachment.objects.create(
        organization=org, name="held", file=ContentFile(b"held", name=f"sub/{RF49_LONG}.txt")
    )
    assert held.file.name == f"attachments/sub/{RF49_LONG}.txt"
    api = _rf49_member(org)
    r = api.post("/rf49/rf49-subdir/", {"name": "new"}, format="json")
    assert r.status_code == 201, r.content
    stored = Attachment.objects.get(name="new").file.name
    assert stored != held.file.name and stored.startswith("attachments/sub/r")
    assert len(stored) <= 100, (len(stored), stored)
    assert (rf49_media / held.file.name).read_bytes() == b"held"
    assert (rf49_media / stored).read_bytes() == b"generated"
