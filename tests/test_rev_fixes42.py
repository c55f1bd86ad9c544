"""Review of rev-files (rev-fixes42): what a refused write removes from storage when the
project's own code goes on after it (a caught refusal, a retried save), and the query
language and schema on file fields."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import serializers

from django_arc import ArcError, Resource, ResourceSite, action, presets
from django_arc import permissions as P
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Attachment

pytestmark = pytest.mark.django_db

rf42_site = ResourceSite(name="rev-fixes42")


class Rf42RetryInput(serializers.Serializer):
    file = serializers.FileField()


@rf42_site.register
class Rf42AttachmentResource(Resource):
    """Refuses, after its save, an update naming the row ``refuse``; its ``retry`` action
    catches that refusal and saves the row again under another name, as a project's
    fallback would; ``copy`` saves a new row naming the file a refused update stored."""

    model = Attachment
    name = "attachments"
    fields = ["id", "organization", "name", "file"]
    presets = [presets.MultiTenant()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }

    @action(permissions=P.require_org_membership(), input=Rf42RetryInput)
    def retry(self, request, instance, data, view):
        try:
            view.perform_update(instance, {"name": "refuse", "file": data["file"]})
        except ArcError:
            instance.name = "second try"
            instance.save()
        return instance

    @action(permissions=P.require_org_membership(), input=Rf42RetryInput)
    def copy(self, request, instance, data, view):
        try:
            view.perform_update(instance, {"name": "refuse", "file": data["file"]})
        except ArcError:
            Attachment.objects.create(
                organization=instance.organization, name="copy", file=instance.file.name
            )
        return instance

    def after_update(self, request, instance):
        if instance.name == "refuse":
            raise ArcError("CONFLICT", "refused after the save", 409)


@pytest.fixture
def rf42_media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = "/media/"
    with site_mounted(settings, "rf42", rf42_site):
        yield tmp_path


def _rf42_member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    return api


def _rf42_stored(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def _rf42_upload(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"content", content_type="text/plain")


@pytest.mark.parametrize(
    "transactional",
    [False, pytest.param(True, marks=pytest.mark.django_db(transaction=True))],
    ids=["in-test-tx", "committed"],
)
@pytest.mark.parametrize("how", ["retry", "copy"])
def test_rf42_a_row_saved_after_a_caught_refusal_keeps_the_file_it_names(
    rf42_media, transactional, how
):
    """A refused update's file was removed the moment its write raised, even when the
    project caught the refusal and saved a row naming that file (the same instance saved
    again, or a new row given its name): the row committed, naming a file no longer in
    storage. Files are judged when the outermost write ends, and a row saved naming a
    file keeps it."""
    org = OrganizationFactory()
    api = _rf42_member(org)
    r = api.post(
        "/rf42/attachments/", {"name": "a", "file": _rf42_upload("old.txt")}, format="multipart"
    )
    assert r.status_code == 201, r.content
    pk = r.json()["data"]["id"]
    r = api.post(
        f"/rf42/attachments/{pk}/action/",
        {"action": how, "file": _rf42_upload("new.txt")},
        format="multipart",
    )
    assert r.status_code == 200, r.content
    names = set(Attachment.objects.values_list("file", flat=True))
    assert names <= set(_rf42_stored(rf42_media)), (names, _rf42_stored(rf42_media))
    assert "attachments/new.txt" in names
