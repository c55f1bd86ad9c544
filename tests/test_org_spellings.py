"""One organization, several spellings of its id in ``X-Organization-Id``: ``01`` for the
integer ``1``, a UUID in capitals or without dashes. The tenant filter reads them all as
the one organization (the ORM parses the header), so the query cache and idempotency keys
must too: one cached entry, one run of a retried write. A spelling never reaches another
organization.

Resources here live on a site of their own, the only one registered during each test (the
canonical spelling is what every registered tenant column reads alike: a ``to_field="slug"``
tenant elsewhere in the suite would read ``01`` as a slug)."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_arc import Resource, ResourceSite, presets, redis_alias, sites
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox import OutboxEvent
from shop.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Ledger, SlugLedger, UuidOrg, UuidOrgNote

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]

MEMBERS = {key: P.require_org_membership() for key in ("list", "get", "create", "update")}


def lenient(user, org_id):
    """A ``MEMBERSHIP_RESOLVER`` that lets the ORM read the header, as most do: ``01`` is
    organization 1 to it, a UUID in capitals the UUID. A UUID organization's only member is
    the user named like it."""
    try:
        if UuidOrg.objects.filter(pk=org_id, name=user.username).exists():
            return ["admin"]
    except ValidationError:
        pass  # no UUID: an integer organization's id, perhaps
    roles = Membership.objects.filter(user_id=user.pk, organization_id=org_id)
    return list(roles.values_list("role", flat=True)) or None


class _Spelled(Resource):
    permissions = MEMBERS
    cache = {"stale_seconds": 30}
    idempotent = True


class LedgerResource(_Spelled):
    model = Ledger
    name = "ledgers"
    presets = [presets.MultiTenant(), presets.Audited()]  # a preset binds to one resource
    fields = ["id", "name", "organization"]


class UuidNoteResource(_Spelled):
    model = UuidOrgNote
    name = "uuid-notes"
    presets = [presets.MultiTenant(), presets.Audited()]  # a preset binds to one resource
    fields = ["id", "title", "organization"]


class SlugLedgerResource(_Spelled):
    model = SlugLedger
    name = "slug-ledgers"
    presets = [presets.MultiTenant(), presets.Audited()]  # a preset binds to one resource
    fields = ["id", "name", "organization"]


def _only(settings, *resources):
    """A site of ``resources``, mounted under ``/sp/`` and the only one registered (no
    resource routed by hand either: they count among the tenant columns too)."""
    site = ResourceSite(name="spellings")
    for resource in resources:
        site.register(resource)
    saved = [s for s in sites._all_sites if s is not site]
    saved_by_hand = list(sites._routed_by_hand)
    sites._all_sites[:] = [site]
    sites._routed_by_hand[:] = []
    sites._changed()
    mounted = site_mounted(settings, "sp", site)
    mounted.__enter__()

    def restore():
        mounted.__exit__(None, None, None)
        sites._all_sites[:] = saved
        sites._routed_by_hand[:] = saved_by_hand
        sites._changed()

    return restore


@pytest.fixture(autouse=True)
def redis_and_resolver(settings):
    caches = caches_with("redis", REDIS_URL)
    arc = arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})
    arc["MEMBERSHIP_RESOLVER"] = "tests.test_org_spellings.lenient"
    with override_settings(CACHES=caches, ARC=arc):
        redis_alias.reset_outage_warnings()
        yield


@pytest.fixture
def spelled(settings):
    restore = _only(settings, LedgerResource, UuidNoteResource)
    yield
    restore()


def _list(client, path, org):
    response = client.get(path, HTTP_X_ORGANIZATION_ID=org)
    assert response.status_code == 200, response.content
    return response


def _create(client, path, org, key, body):
    return client.post(
        path, body, format="json", HTTP_X_ORGANIZATION_ID=org, HTTP_IDEMPOTENCY_KEY=key
    )


def test_an_integer_organization_spelled_01_is_one_cache_entry_and_one_key(spelled):
    org, other = OrganizationFactory(), OrganizationFactory()
    Ledger.objects.create(organization=org, name="mine")
    Ledger.objects.create(organization=other, name="theirs")
    user = MembershipFactory(organization=org, role="admin").user
    client = client_for(user)
    spellings = [f"0{org.pk}", str(org.pk), f"00{org.pk}"]
    answers = [_list(client, "/sp/ledgers/", spelling) for spelling in spellings]
    assert [a["X-Cache"] for a in answers] == ["MISS", "HIT", "HIT"]
    assert {a.content for a in answers} == {answers[0].content}
    assert [d["name"] for d in answers[0].json()["docs"]] == ["mine"]
    # a retry under another spelling is the same request: replayed, one row, one event
    first = _create(client, "/sp/ledgers/", spellings[0], "k1", {"name": "new"})
    retry = _create(client, "/sp/ledgers/", spellings[1], "k1", {"name": "new"})
    assert first.status_code == 201, first.content
    assert retry.status_code == 201 and retry["X-Idempotency-Replayed"] == "true"
    assert Ledger.objects.filter(name="new").count() == 1
    [event] = OutboxEvent.objects.filter(type="ledgers.created")
    assert event.meta["organization_id"] == str(org.pk)
    assert set(AuditLog.objects.values_list("organization_id", flat=True)) == {str(org.pk)}
    # and the list cached before the write is gone for every spelling
    after = _list(client, "/sp/ledgers/", spellings[2])
    assert after["X-Cache"] == "MISS" and len(after.json()["docs"]) == 2


def test_a_uuid_organization_in_capitals_or_without_dashes_is_one_identity(spelled):
    org, other = UuidOrg.objects.create(name="uuid-member"), UuidOrg.objects.create(name="x")
    UuidOrgNote.objects.create(organization=org, title="mine")
    UuidOrgNote.objects.create(organization=other, title="theirs")
    client = client_for(UserFactory(username="uuid-member"))
    canonical = str(org.pk)
    spellings = [canonical.upper(), org.pk.hex, canonical, "{" + canonical + "}"]
    answers = [_list(client, "/sp/uuid-notes/", spelling) for spelling in spellings]
    assert [a["X-Cache"] for a in answers] == ["MISS", "HIT", "HIT", "HIT"]
    assert [d["title"] for d in answers[0].json()["docs"]] == ["mine"]
    assert answers[0].json()["docs"][0]["organization"] == canonical
    first = _create(client, "/sp/uuid-notes/", spellings[0], "k2", {"title": "new"})
    retry = _create(client, "/sp/uuid-notes/", spellings[1], "k2", {"title": "new"})
    assert first.status_code == 201, first.content
    assert retry.status_code == 201 and retry["X-Idempotency-Replayed"] == "true"
    assert UuidOrgNote.objects.filter(title="new").count() == 1
    # no spelling reaches another organization: the other's id is not a member's
    for spelling in (str(other.pk).upper(), other.pk.hex, str(uuid.uuid4()).upper()):
        assert_error(
            client.get("/sp/uuid-notes/", HTTP_X_ORGANIZATION_ID=spelling), 403, "ORG_REQUIRED"
        )


def test_an_elevated_caller_names_one_organization_under_every_spelling(spelled):
    """An elevated caller's org header is taken without a membership: its spellings were
    its identity too, in cache entries, keys, events and audit rows."""
    org = OrganizationFactory()
    Ledger.objects.create(organization=org, name="mine")
    Ledger.objects.create(organization=OrganizationFactory(), name="theirs")
    boss = client_for(UserFactory(is_superuser=True), HTTP_X_ARC_SCOPE="platform")
    answers = [_list(boss, "/sp/ledgers/", s) for s in (f"0{org.pk}", str(org.pk))]
    assert [a["X-Cache"] for a in answers] == ["MISS", "HIT"]
    assert [d["name"] for d in answers[0].json()["docs"]] == ["mine"]
    first = _create(boss, "/sp/ledgers/", f"0{org.pk}", "k3", {"name": "new"})
    retry = _create(boss, "/sp/ledgers/", str(org.pk), "k3", {"name": "new"})
    assert first.status_code == 201 and retry["X-Idempotency-Replayed"] == "true"
    assert Ledger.objects.filter(name="new").count() == 1


def test_a_spelling_tenant_columns_read_differently_is_kept_as_sent(settings):
    """``01`` is organization 1 to a tenant column holding the organization's id, and the
    organization whose slug is ``01`` to one holding its slug (``to_field="slug"``): no
    spelling is canonical then, and each resource reads the header as its column does,
    never another organization's rows."""
    restore = _only(settings, LedgerResource, SlugLedgerResource)
    try:
        by_pk = OrganizationFactory(slug="pk-org")
        by_slug = OrganizationFactory(slug=f"0{by_pk.pk}")
        Ledger.objects.create(organization=by_pk, name="pk's")
        Ledger.objects.create(organization=by_slug, name="slug's")
        SlugLedger.objects.create(organization=by_pk, name="pk's")
        SlugLedger.objects.create(organization=by_slug, name="slug's")
        boss = client_for(UserFactory(is_superuser=True), HTTP_X_ARC_SCOPE="platform")
        sent = f"0{by_pk.pk}"
        ledgers = _list(boss, "/sp/ledgers/", sent).json()["docs"]
        slugged = _list(boss, "/sp/slug-ledgers/", sent).json()["docs"]
        assert [d["name"] for d in ledgers] == ["pk's"]
        assert [d["name"] for d in slugged] == ["slug's"]
        # the canonical spelling of the id is another header to the slug column: not the
        # entry of "01", and no row of the organization slugged "01"
        canonical = _list(boss, "/sp/slug-ledgers/", str(by_pk.pk))
        assert canonical["X-Cache"] == "MISS" and canonical.json()["docs"] == []
    finally:
        restore()


def test_a_service_key_bound_under_another_spelling_acts_for_the_canonical_one(spelled):
    """A service client's organization is the row's text, typed by whoever created it
    (``arc_create_client --org``, the admin: both check the organization exists, reading the
    id as the ORM does, capitals and all). Its scope carried that text as is: its events and
    audit rows named the organization another way than its members' (the very split the
    canonical spelling ends), and ``has_org_access(scope, row.organization_id)`` refused its
    own rows. It carries the canonical spelling now (its header is still compared with the
    row as sent)."""
    from django_arc.clients import ServiceClient

    org = UuidOrg.objects.create(name="uuid-member")
    UuidOrgNote.objects.create(organization=org, title="mine")
    UuidOrgNote.objects.create(organization=UuidOrg.objects.create(name="x"), title="theirs")
    canonical = str(org.pk)
    _, key = ServiceClient.objects.create_with_key(name="sync", organization_id=canonical.upper())
    api = client_for(None, HTTP_AUTHORIZATION=f"Bearer {key}")
    listed = api.get("/sp/uuid-notes/")
    assert listed.status_code == 200, listed.content
    assert [d["title"] for d in listed.json()["docs"]] == ["mine"]
    created = api.post("/sp/uuid-notes/", {"title": "new"}, format="json")
    assert created.status_code == 201, created.content
    [event] = OutboxEvent.objects.filter(type="uuid-notes.created")
    assert event.meta["organization_id"] == canonical
    assert set(AuditLog.objects.values_list("organization_id", flat=True)) == {canonical}
    # a header naming the organization as the client row does is still the client's
    assert api.get("/sp/uuid-notes/", HTTP_X_ORGANIZATION_ID=canonical.upper()).status_code == 200


def test_a_resolver_refusing_a_spelling_still_refuses_it(spelled, settings):
    """The resolver judges the header as sent; the scope takes the canonical spelling only
    once it admitted the caller. Given the canonical spelling first (as 52b7c25 did), the
    example's resolver, which admits only ``"7"`` for organization 7 (not ``007``, nor
    ``٧``, which ``int()`` reads as 7 too), admitted every spelling the tenant columns
    read alike (902ac85 made the fix; nothing pinned it)."""
    org = OrganizationFactory()
    Ledger.objects.create(organization=org, name="mine")
    user = MembershipFactory(organization=org, role="admin").user
    client = client_for(user)
    arabic = str(org.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    with override_settings(
        ARC={**settings.ARC, "MEMBERSHIP_RESOLVER": "shop.membership.lookup_roles"}
    ):
        assert _list(client, "/sp/ledgers/", str(org.pk)).json()["docs"][0]["name"] == "mine"
        for spelling in (f"0{org.pk}", f"00{org.pk}", arabic, f"+{org.pk}"):
            response = client.get("/sp/ledgers/", HTTP_X_ORGANIZATION_ID=spelling)
            assert_error(response, 403, "ORG_REQUIRED")
            assert response.json()["details"] == {"organization": spelling}


def test_a_service_key_names_its_organization_as_its_row_or_its_events_spell_it(spelled):
    """The header was compared with the client row as sent: a row typed in capitals
    refused the canonical spelling its own events carry (403 ``ORG_REQUIRED``). The row's
    spelling and the canonical one are the client's; another spelling of it (no dashes,
    mixed case: a strict resolver's refusal) and another organization are refused."""
    from django_arc.clients import ServiceClient

    org = UuidOrg.objects.create(name="uuid-member")
    other = UuidOrg.objects.create(name="x")
    UuidOrgNote.objects.create(organization=org, title="mine")
    UuidOrgNote.objects.create(organization=other, title="theirs")
    canonical = str(org.pk)
    _, key = ServiceClient.objects.create_with_key(name="sync", organization_id=canonical.upper())
    api = client_for(None, HTTP_AUTHORIZATION=f"Bearer {key}")
    for spelling in (canonical, canonical.upper()):
        listed = api.get("/sp/uuid-notes/", HTTP_X_ORGANIZATION_ID=spelling)
        assert listed.status_code == 200, (spelling, listed.content)
        assert [d["title"] for d in listed.json()["docs"]] == ["mine"]
    created = api.post(
        "/sp/uuid-notes/", {"title": "new"}, format="json", HTTP_X_ORGANIZATION_ID=canonical
    )
    assert created.status_code == 201, created.content
    [event] = OutboxEvent.objects.filter(type="uuid-notes.created")
    assert event.meta["organization_id"] == canonical
    for refused in (str(other.pk), org.pk.hex, canonical[:8].upper() + canonical[8:]):
        answer = api.get("/sp/uuid-notes/", HTTP_X_ORGANIZATION_ID=refused)
        assert_error(answer, 403, "ORG_REQUIRED")


def test_a_service_key_of_an_integer_organization_refuses_spellings_a_strict_resolver_does(
    spelled,
):
    from django_arc.clients import ServiceClient

    org, other = OrganizationFactory(), OrganizationFactory()
    Ledger.objects.create(organization=org, name="mine")
    _, key = ServiceClient.objects.create_with_key(name="sync", organization_id=f"0{org.pk}")
    api = client_for(None, HTTP_AUTHORIZATION=f"Bearer {key}")
    for spelling in (str(org.pk), f"0{org.pk}"):
        listed = api.get("/sp/ledgers/", HTTP_X_ORGANIZATION_ID=spelling)
        assert listed.status_code == 200, (spelling, listed.content)
        assert [d["name"] for d in listed.json()["docs"]] == ["mine"]
    arabic = str(org.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for refused in (f"00{org.pk}", arabic, str(other.pk)):
        answer = api.get("/sp/ledgers/", HTTP_X_ORGANIZATION_ID=refused)
        assert_error(answer, 403, "ORG_REQUIRED")
