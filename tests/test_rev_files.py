"""Resources over models with files (rev-files): a ``FileField`` uploaded through multipart
bodies on a tenant's resource, one the resource hides, and a ``FilePathField`` whose
directory is a callable. What a refused write leaves in storage, what the query language
says of a row without a file, and what the guards, events and replays hold."""

from __future__ import annotations

import os

import django
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework import serializers

from django_arc import ArcError, Resource, ResourceSite, action, presets
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Attachment, attachment_templates

pytestmark = pytest.mark.django_db

REV_FILES_MEMBERS = {
    key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
}

rev_files_site = ResourceSite(name="rev-files")


class RevFilesReplaceInput(serializers.Serializer):
    file = serializers.FileField()
    note = serializers.CharField(required=False)


@rev_files_site.register
class RevFilesAttachmentResource(Resource):
    """Refuses, after its save, a row named ``refuse`` (create and update) and an action
    whose note is ``refuse``."""

    model = Attachment
    name = "attachments"
    fields = ["id", "organization", "name", "file", "secret", "template"]
    filter_fields = {"file": ["eq", "exists"], "template": ["eq"]}
    sort_fields = ["name", "file", "template"]
    presets = [presets.MultiTenant(), presets.Audited()]
    permissions = REV_FILES_MEMBERS
    field_permissions = {"secret": F.hidden()}
    idempotent = True

    @action(permissions=P.require_org_membership(), input=RevFilesReplaceInput)
    def replace(self, request, instance, data):
        instance.file = data["file"]
        instance.save()
        if data.get("note") == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)
        return instance

    def after_create(self, request, instance):
        if instance.name == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)

    def after_update(self, request, instance):
        if instance.name == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)


@rev_files_site.register
class RevFilesPlainAttachmentResource(Resource):
    """No hooks: with the outbox off, its write is one statement, run without a
    transaction of its own."""

    model = Attachment
    name = "plain-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = REV_FILES_MEMBERS


def _rev_files_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api


def _stored(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


@pytest.fixture
def rev_files_media(settings, tmp_path):
    """The site mounted at ``/rf/``, storing files under a directory of the test's own."""
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = "/media/"
    with site_mounted(settings, "rf", rev_files_site):
        yield tmp_path


def _upload(name: str, content: bytes = b"content") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/plain")


def test_a_file_path_field_whose_directory_is_a_callable_offers_its_files(rev_files_media):
    """Django (3.0+) takes a callable ``path`` so a migration names no machine's directory;
    DRF handed the function on and listing it raised ``TypeError``: the resource's
    serializer, so its routes, never built. The files of the directory it returns are the
    choices; any other path is 400 naming the field."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    welcome = os.path.join(attachment_templates(), "welcome.txt")
    r = api.post("/rf/attachments/", {"name": "t", "template": welcome}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["template"] == welcome
    for outside in ("/etc/passwd", os.path.join(attachment_templates(), "..", "models.py")):
        r = api.post("/rf/attachments/", {"name": "t", "template": outside}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"].keys() == {"template"}
    assert api.get("/rf/attachments/", {"template": welcome}).json()["total"] == 1
    assert list(Attachment.objects.values_list("template", flat=True)) == [welcome]


@pytest.mark.parametrize("key", [None, "rev-files-1"], ids=["unkeyed", "keyed"])
def test_a_write_refused_after_its_save_leaves_no_file_in_storage(rev_files_media, key):
    """A ``FileField`` stores its upload before the row's INSERT or UPDATE, and storage is
    no part of the transaction: a create, an update or an action refused after the save
    (here by an after-hook) rolled the row back and left its file in storage, named by no
    row. The file goes with the row; the row a refused update leaves keeps its own file,
    and what a successful write stores stays."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    r = api.post(
        "/rf/attachments/",
        {"name": "refuse", "file": _upload("refused.txt")},
        format="multipart",
        **headers,
    )
    assert_error(r, 409, "CONFLICT")
    assert _stored(rev_files_media) == []
    assert not Attachment.objects.exists()

    r = api.post(
        "/rf/attachments/", {"name": "kept", "file": _upload("kept.txt")}, format="multipart"
    )
    assert r.status_code == 201, r.content
    pk = r.json()["data"]["id"]
    assert _stored(rev_files_media) == ["attachments/kept.txt"]
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key + "-update"}
    r = api.patch(
        f"/rf/attachments/{pk}/",
        {"name": "refuse", "file": _upload("new.txt")},
        format="multipart",
        **headers,
    )
    assert_error(r, 409, "CONFLICT")
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key + "-action"}
    r = api.post(
        f"/rf/attachments/{pk}/action/",
        {"action": "replace", "note": "refuse", "file": _upload("act.txt")},
        format="multipart",
        **headers,
    )
    assert_error(r, 409, "CONFLICT")
    assert _stored(rev_files_media) == ["attachments/kept.txt"]
    assert Attachment.objects.get().file.name == "attachments/kept.txt"

    r = api.post(
        f"/rf/attachments/{pk}/action/",
        {"action": "replace", "file": _upload("a.txt")},
        format="multipart",
    )
    assert r.status_code == 200, r.content
    # the replaced file stays in storage, as Django leaves it (docs/decisions.md)
    assert _stored(rev_files_media) == ["attachments/a.txt", "attachments/kept.txt"]
    assert [e.type for e in OutboxEvent.objects.order_by("created_at")] == [
        "attachments.created",
        "attachments.replace",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_refused_write_outside_any_outer_transaction_leaves_no_file(rev_files_media):
    """The same without the test's own transaction around the request, as a server runs
    it: the write's transaction is the outermost, and its rollback drops the file."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    r = api.post(
        "/rf/attachments/", {"name": "refuse", "file": _upload("refused.txt")}, format="multipart"
    )
    assert_error(r, 409, "CONFLICT")
    assert _stored(rev_files_media) == []
    r = api.post(
        "/rf/attachments/", {"name": "kept", "file": _upload("kept.txt")}, format="multipart"
    )
    assert r.status_code == 201, r.content
    assert _stored(rev_files_media) == ["attachments/kept.txt"]


def test_exists_on_a_file_field_says_what_the_answer_renders(rev_files_media):
    """A row without a file stores ``""`` (Django's ``FileField`` is never NULL unless
    asked) and the answer renders it ``null``: ``?file[exists]=false`` found none of those
    rows (``IS NULL``) and ``true`` found them all."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    for name, body in (("with", {"file": _upload("f.txt")}), ("without", {})):
        r = api.post("/rf/attachments/", {"name": name, **body}, format="multipart")
        assert r.status_code == 201, r.content
    rendered = {d["name"]: d["file"] for d in api.get("/rf/attachments/").json()["docs"]}
    assert rendered["without"] is None and rendered["with"].endswith("/media/attachments/f.txt")
    for value, names in (("false", ["without"]), ("0", ["without"]), ("true", ["with"])):
        r = api.get("/rf/attachments/", {"file[exists]": value, "sort": "name"})
        assert [d["name"] for d in r.json()["docs"]] == names, value
    r = api.get("/rf/attachments/", {"file": "attachments/f.txt"})
    assert [d["name"] for d in r.json()["docs"]] == ["with"]


def test_the_schema_documents_a_file_as_a_multipart_part_of_bytes(rev_files_media):
    """A JSON body cannot carry a file (a string is 400 "not a file"), yet the schema
    offered the resource's bodies as JSON only, with the file a nullable ``uri``: a client
    built from it could not upload. A body that takes a file adds ``multipart/form-data``
    and its file is ``binary``; answers keep the URL."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator(patterns=rev_files_site.urls[0]).get_schema(public=True)
    operations = schema["paths"]
    for path, method in (
        ("/attachments/", "post"),
        ("/attachments/{id}/", "patch"),
        ("/attachments/{id}/action/", "post"),
    ):
        content = operations[path][method]["requestBody"]["content"]
        assert list(content) == ["application/json", "multipart/form-data"], (path, method)
    components = schema["components"]["schemas"]
    for name in ("RevFilesAttachmentRequest", "PatchedRevFilesAttachmentRequest"):
        assert components[name]["properties"]["file"] == {"type": "string", "format": "binary"}
    replace = components["RevFilesAttachmentReplaceAction"]["properties"]["file"]
    assert replace == {"type": "string", "format": "binary"}
    assert components["RevFilesAttachment"]["properties"]["file"]["format"] == "uri"
    # a body that takes no file is still JSON only
    assert list(operations["/attachments/"]["get"].get("requestBody", {})) == []


@pytest.mark.parametrize("sort", ["file", "-file", "template,-file"])
def test_a_walk_sorted_by_a_file_field_pages_every_row_once(rev_files_media, sort):
    """A cursor holds the last row's sort values, and a ``FileField``'s attribute is a
    ``FieldFile``, which no JSON encoder takes: ``?sort=file&after=`` was a 500 from its
    first page. The cursor holds the file's name (the column's text); the walk lists the
    rows the offset pages list, in their order, rows without a file included."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    for name in ("b", "a", "d", "c"):
        r = api.post(
            "/rf/attachments/", {"name": name, "file": _upload(f"{name}.txt")}, format="multipart"
        )
        assert r.status_code == 201, r.content
    for name in ("x", "y"):
        assert api.post("/rf/attachments/", {"name": name}, format="json").status_code == 201
    expected = [d["id"] for d in api.get("/rf/attachments/", {"sort": sort}).json()["docs"]]
    walked, after = [], ""
    while after is not None:
        r = api.get("/rf/attachments/", {"sort": sort, "after": after, "limit": 2})
        assert r.status_code == 200, r.content
        walked += [d["id"] for d in r.json()["docs"]]
        after = r.json()["next"]
    assert walked == expected and len(walked) == 6


def test_a_keyed_upload_is_stored_once_and_its_key_holds_the_files_bytes(rev_files_media):
    """The fingerprint of a multipart body holds each file's name, size and SHA-256: the
    same upload sent again under its key is the stored answer replayed (one row, one file
    in storage), another file's bytes or name under that key is 422."""
    org = OrganizationFactory()
    api = _rev_files_member(org)

    def send(name="a.txt", content=b"first"):
        return api.post(
            "/rf/attachments/",
            {"name": "keyed", "file": _upload(name, content)},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="rev-files-upload",
        )

    first = send()
    assert first.status_code == 201, first.content
    again = send()
    assert again.status_code == 201 and again["X-Idempotency-Replayed"] == "true"
    assert again.json() == first.json()
    assert_error(send(content=b"other"), 422, "IDEMPOTENCY_KEY_REUSED")
    assert_error(send(name="b.txt"), 422, "IDEMPOTENCY_KEY_REUSED")
    assert Attachment.objects.count() == 1
    assert _stored(rev_files_media) == ["attachments/a.txt"]


def test_a_hidden_file_field_is_never_written_nor_shown(rev_files_media):
    """A ``hidden()`` file field's part is dropped as if the field did not exist (nothing
    stored), and its name is in no answer, event payload or audit row; a path sent for
    the visible one in a JSON body is 400 "not a file", never a file of storage's."""
    from django_arc.audit.models import AuditLog

    org = OrganizationFactory()
    api = _rev_files_member(org)
    body = {"name": "h", "file": _upload("shown.txt"), "secret": _upload("secret.txt")}
    r = api.post("/rf/attachments/", body, format="multipart")
    assert r.status_code == 201, r.content
    assert "secret" not in r.json()["data"]
    assert _stored(rev_files_media) == ["attachments/shown.txt"]
    assert Attachment.objects.get().secret.name == ""
    Attachment.objects.update(secret="secrets/kept.txt")
    pk = r.json()["data"]["id"]
    r = api.patch(f"/rf/attachments/{pk}/", {"name": "h2"}, format="json")
    assert r.status_code == 200 and "secret" not in r.json()["data"]
    for traversal in ("secrets/kept.txt", "../../etc/passwd", "/etc/passwd"):
        r = api.patch(f"/rf/attachments/{pk}/", {"file": traversal}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"].keys() == {"file"}
    assert Attachment.objects.get().file.name == "attachments/shown.txt"
    written = [e.payload for e in OutboxEvent.objects.all()]
    written += [[a.before, a.after] for a in AuditLog.objects.all()]
    assert len(written) == 4 and "secret" not in str(written)


@pytest.mark.django_db(transaction=True)
def test_an_upload_under_manual_transaction_management_is_kept(rev_files_media, settings):
    """With autocommit off and no atomic block (a project managing transactions itself),
    ``on_commit`` raises ``TransactionManagementError``: noting the upload's row must not
    fail the save. The project commits; the file is kept."""
    from django.db import transaction

    settings.ARC = {**settings.ARC, "EVENTS": {"OUTBOX": False}}
    org = OrganizationFactory()
    api = _rev_files_member(org)
    transaction.set_autocommit(False)
    try:
        r = api.post(
            "/rf/plain-attachments/",
            {"name": "manual", "file": _upload("manual.txt")},
            format="multipart",
        )
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert r.status_code == 201, r.content
    assert Attachment.objects.get().file.name == "attachments/manual.txt"
    assert _stored(rev_files_media) == ["attachments/manual.txt"]


# -- rev-fixes42: a refusal the project catches, then a row naming its file ----------------


class RevFixes42FileInput(serializers.Serializer):
    file = serializers.FileField()


class RevFixes42ManyFilesInput(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), min_length=1)


@rev_files_site.register
class RevFixes42AttachmentResource(Resource):
    """Refuses, after its save, an update naming the row ``refuse``; its ``retry`` action
    catches that refusal and saves the row again under another name, as a project's
    fallback would; ``copy`` saves a new row naming the file a refused update stored."""

    model = Attachment
    name = "rf42-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = REV_FILES_MEMBERS

    @action(permissions=P.require_org_membership(), input=RevFixes42FileInput)
    def retry(self, request, instance, data, view):
        try:
            view.perform_update(instance, {"name": "refuse", "file": data["file"]})
        except ArcError:
            instance.name = "second try"
            instance.save()
        return instance

    @action(permissions=P.require_org_membership(), input=RevFixes42FileInput)
    def copy(self, request, instance, data, view):
        try:
            view.perform_update(instance, {"name": "refuse", "file": data["file"]})
        except ArcError:
            Attachment.objects.create(
                organization=instance.organization, name="copy", file=instance.file.name
            )
        return instance

    @action(permissions=P.require_org_membership(), input=RevFixes42FileInput)
    def give_up(self, request, instance, data, view):
        try:
            view.perform_update(instance, {"name": "refuse", "file": data["file"]})
        except ArcError:
            pass
        return {"given up": True}

    @action(permissions=P.require_org_membership(), input=RevFixes42ManyFilesInput)
    def attach(self, request, instance, data):
        for index, upload in enumerate(data["files"]):
            Attachment.objects.create(
                organization=instance.organization, name=f"part {index}", file=upload
            )
        return {"attached": len(data["files"])}

    def after_update(self, request, instance):
        if instance.name == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)


@pytest.mark.parametrize(
    "transactional",
    [False, pytest.param(True, marks=pytest.mark.django_db(transaction=True))],
    ids=["in-test-tx", "committed"],
)
@pytest.mark.parametrize("how", ["retry", "copy", "give_up"])
def test_rev_fixes42_a_row_saved_after_a_caught_refusal_keeps_the_file_it_names(
    rev_files_media, transactional, how
):
    """A refused update's file was removed the moment its write raised, even when the
    project caught the refusal and saved a row naming that file (the same instance saved
    again, or a new row given its name): the row committed, naming a file no longer in
    storage. Files are judged when the outermost write ends, and a row saved naming a
    file keeps it; one that no row names then (the refusal caught, nothing saved again)
    still goes."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    r = api.post(
        "/rf/rf42-attachments/", {"name": "a", "file": _upload("old.txt")}, format="multipart"
    )
    assert r.status_code == 201, r.content
    pk = r.json()["data"]["id"]
    r = api.post(
        f"/rf/rf42-attachments/{pk}/action/",
        {"action": how, "file": _upload("new.txt")},
        format="multipart",
    )
    assert r.status_code == 200, r.content
    names = set(Attachment.objects.values_list("file", flat=True))
    assert names <= set(_stored(rev_files_media)), (names, _stored(rev_files_media))
    if how == "give_up":
        assert _stored(rev_files_media) == ["attachments/old.txt"] == sorted(names)
    else:
        assert "attachments/new.txt" in names


def test_rev_fixes42_a_list_of_files_is_documented_as_parts_of_bytes(rev_files_media):
    """An action's ``input`` with a ``ListField`` of files takes repeated multipart parts,
    yet the schema (fixed for a single file by rev-files) still said an array of ``uri``
    strings, which a JSON body cannot carry and a form cannot send: its items are
    ``binary`` now, and the upload the schema describes is what the action takes."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator(patterns=rev_files_site.urls[0]).get_schema(public=True)
    attach = schema["components"]["schemas"]["RevFixes42AttachmentAttachAction"]
    assert attach["properties"]["files"]["items"] == {"type": "string", "format": "binary"}
    org = OrganizationFactory()
    api = _rev_files_member(org)
    r = api.post("/rf/rf42-attachments/", {"name": "a"}, format="json")
    pk = r.json()["data"]["id"]
    body = {"action": "attach", "files": [_upload("one.txt"), _upload("two.txt")]}
    r = api.post(f"/rf/rf42-attachments/{pk}/action/", body, format="multipart")
    assert r.status_code == 200 and r.json()["data"] == {"attached": 2}, r.content
    assert _stored(rev_files_media) == ["attachments/one.txt", "attachments/two.txt"]


# -- rev-fixes47: a committed row whose keep callback never ran -----------------------------


def _rf47_project_callback_fails() -> None:
    raise RuntimeError("the project's own on_commit callback failed")


@rev_files_site.register
class RevFixes47AttachmentResource(Resource):
    """Registers, before the save, a commit callback of the project's that raises: Django
    then runs none of the callbacks registered after it on that commit."""

    model = Attachment
    name = "rf47-attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = REV_FILES_MEMBERS

    def before_create(self, request, data):
        transaction.on_commit(_rf47_project_callback_fails)
        return data

    @action(permissions=P.require_org_membership(), input=RevFixes42FileInput)
    def unsaved(self, request, instance, data):
        """Stores the upload, then the INSERT fails (a key no column holds): no row saved."""
        try:
            with transaction.atomic():
                Attachment.objects.create(organization_id=2**70, name="x", file=data["file"])
        except Exception:  # noqa: BLE001 - the project's fallback: nothing saved
            return {"saved": False}
        return {"saved": True}


@pytest.mark.django_db(transaction=True)
def test_rev_fixes47_a_committed_row_keeps_its_file_when_an_earlier_callback_raises(
    rev_files_media,
):
    """A file was kept only by a commit callback its row's save registered; a callback the
    project registered before it on the same commit raising made Django skip it, and the
    file of the committed row was removed: the row named a file no longer in storage.
    Before removing a file, the rows saved naming it are asked."""
    org = OrganizationFactory()
    api = _rev_files_member(org)
    r = api.post(
        "/rf/rf47-attachments/", {"name": "a", "file": _upload("kept.txt")}, format="multipart"
    )
    names = list(Attachment.objects.values_list("file", flat=True))
    assert names == ["attachments/kept.txt"], (r.status_code, r.content)
    assert _stored(rev_files_media) == names


@pytest.mark.skipif(django.VERSION < (5, 1), reason="FileSystemStorage(allow_overwrite) is 5.1+")
def test_rev_fixes47_a_refused_upload_overwriting_a_kept_name_removes_no_row_s_file(
    rev_files_media, settings
):
    """A storage that overwrites (django-storages' S3 default, ``allow_overwrite``) stores
    a refused upload under the very name a committed row holds; removing the refused
    write's file then removed that row's: the row named a file no longer stored. A file a
    row of the model names is left in storage."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"allow_overwrite": True},
        },
    }
    org = OrganizationFactory()
    api = _rev_files_member(org)
    r = api.post("/rf/attachments/", {"name": "a", "file": _upload("same.txt")}, format="multipart")
    assert r.status_code == 201, r.content
    r = api.post(
        "/rf/attachments/", {"name": "refuse", "file": _upload("same.txt")}, format="multipart"
    )
    assert_error(r, 409, "CONFLICT")
    assert list(Attachment.objects.values_list("file", flat=True)) == ["attachments/same.txt"]
    assert _stored(rev_files_media) == ["attachments/same.txt"]
    # a save whose INSERT failed, so that no row was saved naming the upload
    pk = Attachment.objects.get().pk
    body = {"action": "unsaved", "file": _upload("same.txt")}
    r = api.post(f"/rf/rf47-attachments/{pk}/action/", body, format="multipart")
    assert r.status_code == 200 and r.json()["data"] == {"saved": False}, r.content
    assert _stored(rev_files_media) == ["attachments/same.txt"]


def test_arcs_own_upload_receivers_are_no_project_code_a_write_runs_row_by_row():
    """The receivers noting uploads (``uploads.watch_file_fields``) are django-arc's own, as
    the query cache's are: counted as a project's, every model with a file field read as
    saving its own way, so its bulk writes went row by row and each write took a
    transaction of its own, for receivers that do nothing of the project's."""
    from django.db.models.signals import post_save, pre_save

    from django_arc.signals import saves_its_own_way

    assert pre_save.has_listeners(Attachment) and post_save.has_listeners(Attachment)
    assert not saves_its_own_way(Attachment)
