"""What a write refused on a row the caller may read answers, and on one it may not.

A throttle raised by an object check (a preset's ``check_object``) is "not now", not
"not this row": a write refused 429 of a row the caller may read answers the 429 with its
``Retry-After``, while a row the caller may not read (outside the GET's filtered rows,
another tenant's, or refused by another object check of the GET) stays the 404 of a
missing id whatever else happens (fix-seen5a). A project's ``NotFound`` with a status of
its own (410 Gone) keeps it where the row is the caller's to read, and is the 404 of a
missing id where it is not."""

from __future__ import annotations

import importlib

import pytest
from rest_framework import exceptions as drf_exceptions

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.exceptions import NotFound, as_arc_error
from django_arc.presets.base import Preset
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

MISSING = 99999999


class Gone(drf_exceptions.NotFound):
    """A project's ``NotFound`` answering 410: a row that was archived for good."""

    status_code = 410
    default_detail = "This row is archived for good."


class BusyRows(Preset):
    """A project's throttle judging rows: a row titled ``busy…`` is refused 429 (wait 30 s)
    on every request naming it, its GET too, or only on writes (``writes_only``). A write of
    a row titled ``gone…`` is refused with the project's 410 (``Gone``)."""

    name = "busy_rows"

    def __init__(self, writes_only: bool = False) -> None:
        self.writes_only = writes_only

    def check_object(self, view, obj):
        if view.request.method in ("GET", "HEAD"):
            if self.writes_only:
                return
        elif obj.title.startswith("gone"):
            raise Gone()
        if obj.title.startswith("busy"):
            raise drf_exceptions.Throttled(wait=30)


class Embargoed(Preset):
    """A project's preset hiding a row from a GET (``check_object``, after the throttle):
    an embargoed row is a GET's 404, as if absent."""

    name = "embargoed"

    def check_object(self, view, obj):
        if view.request.method in ("GET", "HEAD") and "embargoed" in obj.title:
            raise NotFound("embargoed")


def _resource(tenant: bool, writes_only: bool) -> type[Resource]:
    """Everyone (cross-tenant: every member of the organization) writes every row and runs
    its action; a GET reads only the caller's own rows (``require_owner``)."""
    writer = P.require_org_membership() if tenant else P.require_auth()
    name = f"{'tenant' if tenant else 'owner'}-busy{'-writes' if writes_only else ''}"

    def touch(self, request, instance, data):
        return {"touched": instance.pk}

    return type(
        f"Busy{'Tenant' if tenant else 'Owner'}{'Writes' if writes_only else ''}Resource",
        (Resource,),
        {
            "model": Article,
            "name": name,
            "fields": ["id", "slug", "title", "owner"],
            "presets": [
                *([presets.MultiTenant()] if tenant else []),
                presets.Bulk(),
                BusyRows(writes_only),
                Embargoed(),
            ],
            "permissions": {
                "list": P.require_owner(),
                "get": P.require_owner(),
                "update": writer,
                "delete": writer,
            },
            "action_permissions": writer,
            "filter_fields": {"title": ["eq", "in"]},
            "touch": action(touch),
        },
    )


site = ResourceSite(name="throttled")
for _tenant in (False, True):
    for _writes_only in (False, True):
        site.register(_resource(_tenant, _writes_only))


@pytest.fixture
def throttled_api(settings):
    with site_mounted(settings, "throttled", site):
        yield


def _answer(response):
    body = response.json()
    body.pop("requestId", None)
    return response.status_code, body, response.get("Retry-After")


def _writes(api, base, pk):
    """The answers of a PATCH, a DELETE and an action of the row ``pk``."""
    return [
        _answer(api.patch(f"{base}/{pk}/", {"title": "x"}, format="json")),
        _answer(api.delete(f"{base}/{pk}/")),
        _answer(api.post(f"{base}/{pk}/action/", {"action": "touch"}, format="json")),
    ]


THROTTLED = (
    429,
    {
        "success": False,
        "error": "Request was throttled. Expected available in 30 seconds.",
        "code": "THROTTLED",
    },
    "30",
)


def _setting(tenant):
    """(the caller's client, a stranger's client of the same tenant, another tenant's
    client, the rows' ``create`` keywords for the caller's own rows and for a stranger's)."""
    if tenant:
        ours, theirs = OrganizationFactory(), OrganizationFactory()
        me = MembershipFactory(organization=ours).user
        stranger = MembershipFactory(organization=ours).user
        outsider = MembershipFactory(organization=theirs).user
        header = {"HTTP_X_ORGANIZATION_ID": str(ours.pk)}
        return (
            client_for(me, **header),
            client_for(stranger, **header),
            client_for(outsider, HTTP_X_ORGANIZATION_ID=str(theirs.pk)),
            {"owner": me, "organization": ours},
        )
    me, stranger = MembershipFactory().user, MembershipFactory().user
    return client_for(me), client_for(stranger), None, {"owner": me}


@pytest.mark.parametrize("writes_only", [False, True], ids=["every-request", "writes-only"])
@pytest.mark.parametrize("tenant", [False, True], ids=["cross-owner", "cross-tenant"])
def test_a_write_throttled_by_an_object_check_answers_429_on_a_row_the_caller_reads(
    throttled_api, tenant, writes_only
):
    """The caller's own row, throttled by a preset's ``check_object``: its PATCH, DELETE and
    action answer the 429 with ``Retry-After``, whether the throttle fires on the GET too or
    only on writes. When it fired on the GET too, asking whether the caller may read the row
    (the GET, refused 429) counted it unreadable, and the write answered 404. A stranger of
    the same tenant (the GET reads only its own rows), another tenant's member, and the
    owner of a row the GET hides after the throttle (an embargo: a later ``check_object``)
    get the 404 of a missing id, with no ``Retry-After``. Nothing is written."""
    api, stranger, outsider, mine = _setting(tenant)
    base = f"/throttled/{'tenant' if tenant else 'owner'}-busy{'-writes' if writes_only else ''}"
    busy = Article.objects.create(slug="b", title="busy", **mine)
    hidden = Article.objects.create(slug="e", title="busy embargoed", **mine)
    assert api.get(f"{base}/{busy.pk}/").status_code == (200 if writes_only else 429)
    assert _writes(api, base, busy.pk) == [THROTTLED] * 3

    missing = _writes(api, base, MISSING)
    assert {status for status, _, _ in missing} == {404}
    assert all(wait is None for _, _, wait in missing)
    assert _writes(api, base, hidden.pk) == missing  # the embargo after the throttle: 404
    assert _writes(stranger, base, busy.pk) == missing  # not among the GET's rows: 404
    if outsider is not None:
        assert _writes(outsider, base, busy.pk) == missing  # another tenant's row: 404
    for row in (busy, hidden):
        row.refresh_from_db()
        assert (row.title, row.deleted_at) == (row.title, None)
    assert Article.objects.filter(pk__in=[busy.pk, hidden.pk]).count() == 2


@pytest.mark.parametrize("tenant", [False, True], ids=["cross-owner", "cross-tenant"])
def test_a_bulk_write_throttled_on_readable_rows_lists_them_429_and_hides_the_others(
    throttled_api, tenant
):
    """A bulk write of several rows (asked together whether readable, ``judged_rows``):
    the caller's throttled rows are listed 429 with the request's ``Retry-After``; a row the
    GET hides after the throttle, a stranger's row and another tenant's are a missing id's
    "Not found." (answered first, the 400). Before, every throttled row was "Not found."."""
    api, stranger, outsider, mine = _setting(tenant)
    base = f"/throttled/{'tenant' if tenant else 'owner'}-busy/bulk/"
    rows = [Article.objects.create(slug=f"b{i}", title=f"busy {i}", **mine) for i in range(3)]
    hidden = Article.objects.create(slug="e", title="busy embargoed", **mine)
    listed = {"code": "THROTTLED", "error": THROTTLED[1]["error"]}
    for method, key, body in [
        ("patch", "items", {"items": [{"id": r.pk, "title": "x"} for r in rows]}),
        ("delete", "ids", {"ids": [r.pk for r in rows]}),
    ]:
        status, answer, wait = _answer(getattr(api, method)(base, body, format="json"))
        assert (status, answer["code"], wait) == (429, "THROTTLED", "30"), answer
        assert answer["details"] == {key: dict.fromkeys("012", listed)}
    status, answer, wait = _answer(
        api.patch(base, {"filter": {"title": "busy 0"}, "data": {"title": "x"}}, format="json")
    )
    assert (status, answer["code"], wait) == (429, "THROTTLED", "30"), answer

    not_found = {"id": ["Not found."]}
    callers = [(api, hidden.pk), (stranger, rows[0].pk)]
    if outsider is not None:
        callers.append((outsider, rows[0].pk))
    for caller, pk in callers:
        r = caller.patch(base, {"items": [{"id": pk, "title": "x"}]}, format="json")
        assert (r.status_code, r.json()["details"]) == (400, {"items": {"0": not_found}})
        assert r.get("Retry-After") is None
        r = caller.delete(base, {"ids": [pk]}, format="json")
        assert (r.status_code, r.json()["details"]) == (400, {"ids": {"0": not_found}})
    # a filter matching only rows the caller may not read matches none
    r = stranger.patch(base, {"filter": {"title": "busy 0"}, "data": {"title": "x"}}, format="json")
    assert (r.status_code, r.json()["data"]) == (200, {"updated": 0, "ids": []})
    assert sorted(Article.objects.values_list("title", flat=True)) == [
        "busy 0",
        "busy 1",
        "busy 2",
        "busy embargoed",
    ]


GONE = (
    410,
    {"success": False, "error": "This row is archived for good.", "code": "NOT_FOUND"},
    None,
)


def test_a_projects_not_found_keeps_its_own_status():
    """The error handler's one mapping keeps a ``NotFound`` subclass's status (the code
    says its kind); it answered 404 whatever status the project gave it."""
    answer = as_arc_error(Gone())
    assert (answer.code, answer.status) == ("NOT_FOUND", 410)
    assert as_arc_error(drf_exceptions.NotFound()).status == 404


@pytest.mark.parametrize("tenant", [False, True], ids=["cross-owner", "cross-tenant"])
def test_a_write_refused_with_a_projects_410_answers_it_on_a_readable_row_only(
    throttled_api, tenant
):
    """A ``NotFound`` of the project's with its own status (410) refusing the write of a
    row the caller reads: the 410, on a PATCH, a DELETE and an action, and listed under the
    item (its status the bulk answer's) — it was a 404, and a bulk item "Not found.". The
    same refusal of a row the caller may not read (a stranger's, another tenant's, an
    embargoed one) is the 404 of a missing id, and a bulk item's "Not found."."""
    api, stranger, outsider, mine = _setting(tenant)
    base = f"/throttled/{'tenant' if tenant else 'owner'}-busy"
    gone = Article.objects.create(slug="g", title="gone", **mine)
    hidden = Article.objects.create(slug="e", title="gone embargoed", **mine)
    assert _writes(api, base, gone.pk) == [GONE] * 3
    listed = {"code": "NOT_FOUND", "error": GONE[1]["error"]}
    for method, key, body in [
        ("patch", "items", {"items": [{"id": gone.pk, "title": "x"}]}),
        ("delete", "ids", {"ids": [gone.pk]}),
    ]:
        status, answer, _ = _answer(getattr(api, method)(f"{base}/bulk/", body, format="json"))
        assert (status, answer["details"]) == (410, {key: {"0": listed}}), answer

    missing = _writes(api, base, MISSING)
    assert {status for status, _, _ in missing} == {404}
    callers = [(api, hidden.pk), (stranger, gone.pk)] + ([(outsider, gone.pk)] if outsider else [])
    for caller, pk in callers:
        assert _writes(caller, base, pk) == missing
        r = caller.delete(f"{base}/bulk/", {"ids": [pk]}, format="json")
        assert (r.status_code, r.json()["details"]) == (400, {"ids": {"0": {"id": ["Not found."]}}})
    assert sorted(Article.objects.values_list("title", flat=True)) == ["gone", "gone embargoed"]


class ThrottledReads(Preset):
    """A project's read throttle (``check_request`` of every GET, a 429), and a lock on
    writes of a row titled ``locked…`` (``check_object``, a 403)."""

    name = "throttled_reads"

    def check_request(self, view):
        if view.request.method in ("GET", "HEAD"):
            raise drf_exceptions.Throttled(wait=5)

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and obj.title.startswith("locked"):
            raise drf_exceptions.PermissionDenied("This row is locked.")


class ThrottledReadsResource(Resource):
    model = Article
    name = "throttled-reads"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.Bulk(), ThrottledReads(), Embargoed()]
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "update": P.require_auth(),
        "delete": P.require_auth(),
    }


site.register(ThrottledReadsResource)


def test_a_read_throttle_of_the_request_does_not_hide_a_row_from_a_refused_write(throttled_api):
    """Cross-owner. A preset's ``check_request`` throttling every GET (the caller reads too
    often) does not make the caller's own row unreadable: its write refused 403 by an object
    check answers the 403 (it was the 404 of a missing id, the GET asked meanwhile refused
    429). A stranger's row (not among the GET's rows) and the caller's embargoed row (refused
    by the GET's object check) are still the 404 of a missing id; in a bulk write too."""
    me, stranger = MembershipFactory().user, MembershipFactory().user
    api, theirs = client_for(me), client_for(stranger)
    locked = Article.objects.create(owner=me, slug="l", title="locked")
    hidden = Article.objects.create(owner=me, slug="e", title="locked embargoed")
    base = "/throttled/throttled-reads"
    assert api.get(f"{base}/{locked.pk}/").status_code == 429
    status, body, _ = _answer(api.patch(f"{base}/{locked.pk}/", {"title": "x"}, format="json"))
    assert (status, body["code"], body["error"]) == (403, "FORBIDDEN", "This row is locked.")
    r = api.delete(f"{base}/bulk/", {"ids": [locked.pk]}, format="json")
    assert (r.status_code, r.json()["details"]) == (
        403,
        {"ids": {"0": {"code": "FORBIDDEN", "error": "This row is locked."}}},
    )
    missing = _answer(api.patch(f"{base}/{MISSING}/", {"title": "x"}, format="json"))
    assert missing[0] == 404
    assert _answer(api.patch(f"{base}/{hidden.pk}/", {"title": "x"}, format="json")) == missing
    assert _answer(theirs.patch(f"{base}/{locked.pk}/", {"title": "x"}, format="json")) == missing
    r = theirs.delete(f"{base}/bulk/", {"ids": [locked.pk]}, format="json")
    assert (r.status_code, r.json()["details"]) == (400, {"ids": {"0": {"id": ["Not found."]}}})
    assert sorted(Article.objects.values_list("title", flat=True)) == ["locked", "locked embargoed"]


class ArchivingHooksResource(Resource):
    """Every member writes every row; a GET reads only the caller's own. The hooks refuse a
    row titled ``archived…`` with the project's 410 (``before_update``, ``before_delete``)."""

    model = Article
    name = "archiving-hooks"
    fields = ["id", "slug", "title", "owner"]
    presets = [presets.MultiTenant()]
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "update": P.require_org_membership(),
        "delete": P.require_org_membership(),
    }

    def before_update(self, request, instance, data):
        if instance.title.startswith("archived"):
            raise Gone()

    def before_delete(self, request, instance):
        if instance.title.startswith("archived"):
            raise Gone()


site.register(ArchivingHooksResource)


def test_a_hooks_refusal_is_answered_as_it_is_on_a_row_the_caller_may_write(throttled_api):
    """Cross-owner (decisions.md, "hooks are judged after the object checks"). A hook's
    refusal does not go through ``may_read``: hooks run only on rows the object checks let
    the caller write, and the write of such a row answers 200 whether the caller reads it
    or not, so the row's existence is the caller's to learn either way. A stranger's write
    of my archived row is the hook's 410, as mine is; its write of my other row is 200; a
    missing id stays the 404, and nothing of the refused writes is written."""
    _, stranger, _, mine = _setting(tenant=True)
    base = "/throttled/archiving-hooks"
    archived = Article.objects.create(slug="a", title="archived", **mine)
    plain = Article.objects.create(slug="p", title="plain", **mine)
    assert stranger.get(f"{base}/{archived.pk}/").status_code == 404
    url = f"{base}/{archived.pk}/"
    status, body, _ = _answer(stranger.patch(url, {"title": "x"}, format="json"))
    assert (status, body["code"]) == (410, "NOT_FOUND")
    assert _answer(stranger.delete(url))[0] == 410
    assert stranger.patch(f"{base}/{plain.pk}/", {"title": "y"}, format="json").status_code == 200
    assert stranger.patch(f"{base}/{MISSING}/", {"title": "x"}, format="json").status_code == 404
    assert sorted(Article.objects.values_list("title", flat=True)) == ["archived", "y"]


#: every call of ``CountingThrottle.check_object``: the method of the request it judged
COUNTED: list[str] = []


class CountingThrottle(Preset):
    """A project's throttle that counts a token on every check of a row (``check_object``,
    GETs too) and refuses a row titled ``…busy…`` 429."""

    name = "counting_throttle"

    def check_object(self, view, obj):
        COUNTED.append(view.request.method)
        if "busy" in obj.title:
            raise drf_exceptions.Throttled(wait=5)


class LockedWrites(Preset):
    """A lock on writes of a row titled ``locked…`` (403), asked before the throttle."""

    name = "locked_writes"

    def check_object(self, view, obj):
        if view.request.method not in ("GET", "HEAD") and obj.title.startswith("locked"):
            raise drf_exceptions.PermissionDenied("This row is locked.")


class CountedResource(Resource):
    model = Article
    name = "counted"
    fields = ["id", "slug", "title", "owner"]
    presets = [LockedWrites(), CountingThrottle()]
    permissions = {
        "list": P.require_owner(),
        "get": P.require_owner(),
        "update": P.require_auth(),
        "delete": P.require_auth(),
    }


class OwnLookupCounted(CountedResource.as_viewset()):
    """A project's ViewSet with a ``get_object()`` of its own (DRF's idiom)."""

    def get_object(self):
        return super().get_object()


def test_a_refused_writes_read_question_counts_a_throttle_once(settings):
    """Cross-owner. A write refused 403 (the lock) asks whether the caller may read the row
    as a GET; through a ViewSet with its own ``get_object()``, the GET's object checks ran
    in it, the throttle counted and refused 429 ("every other check passed"), and then ran
    again on the same row: two tokens for one request. Now once; the answer is the 403 (the
    caller reads its row), and a stranger's write of the row is still the 404."""
    from django.urls import clear_url_caches, include
    from django.urls import path as url_path
    from rest_framework.routers import SimpleRouter

    router = SimpleRouter()
    router.register("counted", OwnLookupCounted, basename="own-lookup-counted")
    urls = settings.ROOT_URLCONF
    if isinstance(urls, str):
        urls = importlib.import_module(urls)
    settings.ROOT_URLCONF = type(
        "urls", (), {"urlpatterns": [*urls.urlpatterns, url_path("z/", include(router.urls))]}
    )
    clear_url_caches()
    try:
        me, stranger = MembershipFactory().user, MembershipFactory().user
        row = Article.objects.create(owner=me, slug="b", title="locked busy")
        COUNTED.clear()
        status, body, _ = _answer(
            client_for(me).patch(f"/z/counted/{row.pk}/", {"title": "x"}, format="json")
        )
        assert (status, body["error"]) == (403, "This row is locked.")
        assert COUNTED == ["GET"]
        r = client_for(stranger).patch(f"/z/counted/{row.pk}/", {"title": "x"}, format="json")
        assert r.status_code == 404
    finally:
        clear_url_caches()
    assert Article.objects.get().title == "locked busy"
