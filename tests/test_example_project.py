"""The example shop: seed_demo, the URLs ``make demo`` prints, and every documented curl example.

The curl examples of ``example_project/demo_urls.txt`` and ``README.md`` are replayed in order
through the test client against a freshly seeded database, with the example project's own
settings (URLs, middleware, authentication, ARC), so a docs example that stops being true
fails here rather than in front of a new user.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from django_arc.clients import ServiceClient
from example import settings as example_settings
from example.check_curls import extract, matches, parse_curl, run_with_test_client
from shop.models import Membership, Order, Organization, Product
from tests.redis_support import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SETTINGS = override_settings(
    ROOT_URLCONF="example.urls",
    MIDDLEWARE=example_settings.MIDDLEWARE,
    REST_FRAMEWORK=example_settings.REST_FRAMEWORK,
    ARC=example_settings.ARC,
    SPECTACULAR_SETTINGS=example_settings.SPECTACULAR_SETTINGS,
)
KEY_LINE = re.compile(r"service key for (\w+)-sync \((\w+)\), shown only once: (\S+)")


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def printed_keys(output: str) -> dict[str, str]:
    """``{"ACME_KEY": "arc_…", "GLOBEX_KEY": …}`` from seed_demo's output."""
    return {f"{m.group(2).upper()}_KEY": m.group(3) for m in KEY_LINE.finditer(output)}


@pytest.fixture
def example_settings_on(monkeypatch):
    """The example project's settings. DRF binds ``authentication_classes`` to a view class
    when the class is created, and the generated viewsets are built once per process
    (possibly already under the test settings), so give them the example's classes here, as
    they have in the example project itself."""
    from django.utils.module_loading import import_string

    from django_arc import arc

    classes = [
        import_string(path)
        for path in example_settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    ]
    for resource in arc.resources:
        monkeypatch.setattr(resource.as_viewset(), "authentication_classes", classes)
    with EXAMPLE_SETTINGS:
        yield


@pytest.mark.django_db
def test_seed_demo_twice_creates_the_expected_rows_once():
    first = seed()
    snapshot = {
        "orgs": list(Organization.objects.order_by("slug").values_list("pk", "slug")),
        "products": sorted(Product.objects.values_list("pk", "sku", "price")),
        "orders": sorted(Order.objects.values_list("pk", "reference")),
    }
    second = seed()

    assert Organization.objects.count() == 2
    assert snapshot["orgs"] == list(Organization.objects.order_by("slug").values_list("pk", "slug"))
    for slug in ("acme", "globex"):
        org = Organization.objects.get(slug=slug)
        assert org.products.count() == 50
        assert org.orders.count() == 100
        assert set(
            Membership.objects.filter(organization=org).values_list("user__username", "role")
        ) == {
            (f"{slug}-admin", "admin"),
            (f"{slug}-editor", "editor"),
            (f"{slug}-viewer", "viewer"),
        }
        # every order points at a product of its own organization
        assert not org.orders.exclude(product__organization=org).exists()
    # the second run changed nothing
    assert sorted(Product.objects.values_list("pk", "sku", "price")) == snapshot["products"]
    assert sorted(Order.objects.values_list("pk", "reference")) == snapshot["orders"]

    users = get_user_model().objects
    assert users.count() == 7
    root = users.get(username="root")
    assert root.is_superuser and root.check_password("demo12345")
    assert users.get(username="globex-viewer").check_password("demo12345")

    # one service client per org; the raw key is printed on creation only and is not stored
    keys = printed_keys(first)
    assert set(keys) == {"ACME_KEY", "GLOBEX_KEY"}
    assert printed_keys(second) == {}
    assert "already exists" in second
    assert ServiceClient.objects.count() == 2
    acme = ServiceClient.objects.authenticate(keys["ACME_KEY"])
    assert acme is not None and acme.organization_id == str(
        Organization.objects.get(slug="acme").pk
    )
    assert not ServiceClient.objects.filter(key_hash=keys["ACME_KEY"]).exists()


@pytest.mark.django_db
def test_seed_demo_rotate_keys_replaces_the_keys():
    old = printed_keys(seed())
    new = printed_keys(seed("--rotate-keys"))
    assert set(new) == {"ACME_KEY", "GLOBEX_KEY"} and new["ACME_KEY"] != old["ACME_KEY"]
    assert ServiceClient.objects.authenticate(old["ACME_KEY"]) is None
    assert ServiceClient.objects.authenticate(new["ACME_KEY"]).name == "acme-sync"
    assert ServiceClient.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, accept",
    [
        ("/api/products/", "application/json"),
        ("/api/products/", "text/html"),  # the browsable API
        ("/api/orders/", "application/json"),
        ("/api/orders/", "text/html"),
        ("/api/schema/", "application/vnd.oai.openapi"),
        ("/api/docs/", "text/html"),
        ("/api/redoc/", "text/html"),
    ],
)
def test_demo_urls_answer_200_to_a_logged_in_demo_user(example_settings_on, path, accept):
    seed("--quiet")
    client = Client()
    assert client.login(username="acme-viewer", password="demo12345")
    response = client.get(path, HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content[:500]
    if path in ("/api/products/", "/api/orders/") and accept == "application/json":
        body = response.json()
        acme = Organization.objects.get(slug="acme")
        # the browser session got its organization from the example middleware: Acme only
        assert body["total"] == (50 if "products" in path else 100)
        assert {doc["organization"] for doc in body["docs"]} == {acme.pk}


@pytest.mark.django_db
def test_browser_session_detail_pages_and_admin(example_settings_on):
    seed("--quiet")
    client = Client()
    assert client.login(username="acme-admin", password="demo12345")
    product = Product.objects.filter(organization__slug="acme").first()
    order = Order.objects.filter(organization__slug="acme").first()
    assert client.get(f"/api/products/{product.pk}/", HTTP_ACCEPT="text/html").status_code == 200
    assert client.get(f"/api/orders/{order.reference}/").json()["data"]["id"] == order.pk
    other = Product.objects.filter(organization__slug="globex").first()
    assert client.get(f"/api/products/{other.pk}/").status_code == 404
    assert client.get("/").status_code == 302

    root = Client()
    assert root.login(username="root", password="demo12345")
    for path in (
        "/admin/",
        "/admin/shop/product/",
        "/admin/shop/order/",
        "/admin/shop/organization/",
        "/admin/shop/membership/",
    ):
        assert root.get(path).status_code == 200, path


DOCUMENTS_WITH_CURLS = [
    "example_project/demo_urls.txt",
    "README.md",
    "docs/resources.md",
    "docs/query-language.md",
    "docs/errors.md",
    "docs/permissions.md",
    "docs/multi-tenancy.md",
    "docs/field-permissions.md",
    "docs/decisions.md",
    "docs/actions-and-routes.md",
    "docs/presets/soft-delete.md",
    "docs/presets/slug-lookup.md",
    "docs/presets/owned-by.md",
    "docs/presets/bulk.md",
    "docs/idempotency.md",
    # its answers are the query cache's, which needs Redis (make test starts it)
    pytest.param(
        "docs/query-cache.md",
        marks=pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set"),
    ),
]


@pytest.mark.django_db(reset_sequences=True)
@pytest.mark.parametrize("document", DOCUMENTS_WITH_CURLS)
def test_documented_curl_examples_return_what_they_say(example_settings_on, document):
    """Ids in the docs (organization 1, product 22, …) assume a fresh database, hence
    ``reset_sequences``."""
    env = printed_keys(seed())
    examples = list(extract((ROOT / document).read_text(encoding="utf-8"), document))
    assert len(examples) >= 3, f"{document} lost its curl examples"
    client = Client()
    for example in examples:
        actual = run_with_test_client(client, parse_curl(example.command, env))
        assert matches(example.expected, actual), (
            f"{document}:{example.line}\n$ {example.command}\nexpected: {example.expected}\n"
            f"actual:   {actual}"
        )


@pytest.mark.django_db
def test_order_cannot_reference_another_tenants_product(example_settings_on):
    seed("--quiet")
    acme = Organization.objects.get(slug="acme")
    foreign = Product.objects.filter(organization__slug="globex").first()
    client = Client()
    assert client.login(username="acme-editor", password="demo12345")
    before = Order.objects.count()
    for product in (foreign.pk, "99999999999999999999999", "abc", True):
        response = client.post(
            "/api/orders/",
            {"product": product, "quantity": 1, "customer_email": "x@acme.example"},
            content_type="application/json",
        )
        assert response.status_code == 400, (product, response.content)
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert "product" in response.json()["details"]
    assert Order.objects.count() == before
    order = Order.objects.filter(organization=acme).first()
    response = client.patch(
        f"/api/orders/{order.reference}/", {"product": foreign.pk}, content_type="application/json"
    )
    assert response.status_code == 400
    order.refresh_from_db()
    assert order.product.organization_id == acme.pk


@pytest.mark.django_db
def test_order_list_query_count_does_not_grow_with_page_size(example_settings_on):
    seed("--quiet")
    client = Client()
    assert client.login(username="acme-viewer", password="demo12345")
    counts = []
    for limit in (1, 20, 100):
        client.get(f"/api/orders/?limit={limit}")  # warm the session's default org
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/api/orders/?limit={limit}")
        assert response.status_code == 200 and len(response.json()["docs"]) == limit
        counts.append(len(ctx))
    assert counts[0] == counts[1] == counts[2], counts


@pytest.mark.django_db(reset_sequences=True)
def test_audit_log_after_the_soft_delete_example_is_what_the_docs_say(example_settings_on):
    """docs/presets/audited.md describes the audit row the first SoftDelete example leaves."""
    from django_arc.audit.models import AuditLog

    env = printed_keys(seed())
    first = next(extract((ROOT / "docs/presets/soft-delete.md").read_text(), "soft-delete"))
    actual = run_with_test_client(Client(), parse_curl(first.command, env))
    assert matches(first.expected, actual)
    row = AuditLog.objects.get()
    acme_admin = get_user_model().objects.get(username="acme-admin")
    assert (row.action, row.resource, row.object_id) == ("deleted", "pages", "3")
    assert (row.actor, row.organization_id) == (f"user:{acme_admin.pk}", "1")
    assert acme_admin.pk == 2
    assert row.before == {"deleted_at": None} and set(row.after) == {"deleted_at"}


# -- the example's configuration that docs pages quote (pymdownx.snippets) -----------------------
LOGGER_ROW = re.compile(r"^\| `(django_arc[\w.]*)` \| (DEBUG|INFO|WARNING|ERROR) \|", re.M)


def test_the_example_logging_routes_every_logger_docs_errors_lists():
    """docs/errors.md's Logging section quotes the example's ``LOGGING`` and lists the
    loggers: each listed name is one the package logs on, and the example's entry delivers
    it, at the level listed, to a handler."""
    import logging

    rows = LOGGER_ROW.findall((ROOT / "docs/errors.md").read_text(encoding="utf-8"))
    assert len(rows) >= 10, "docs/errors.md lost its logger table"
    source = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "django_arc").rglob("*.py")
    )
    configured = example_settings.LOGGING["loggers"]
    for name, level in rows:
        assert f'getLogger("{name}")' in source, f"docs/errors.md lists {name}: nothing logs on it"
        # the nearest configured ancestor (or itself) sets the level; one with handlers emits
        parts = name.split(".")
        ancestors = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        entries = [configured[a] for a in ancestors if a in configured]
        assert entries, f"{name} is not routed by the example's LOGGING"
        effective = next(e["level"] for e in entries if "level" in e)
        assert logging.getLevelName(effective) <= logging.getLevelName(level), (name, level)
        assert any(e.get("handlers") for e in entries), name


@pytest.mark.parametrize("debug", ["0", "1"])
def test_the_example_logging_prints_a_500_once_with_debug_on_or_off(debug):
    """A 500 is reported on ``django.request`` (docs/errors.md). Django's default LOGGING
    prints it only with DEBUG on and otherwise hands it to ``mail_admins``, which mails no
    one without ``ADMINS`` (the example sets none): with ``DJANGO_DEBUG=0`` the example's
    LOGGING, which routed ``django_arc`` alone, logged a 500 nowhere. It is printed once,
    debug on or off."""
    import os
    import subprocess
    import sys

    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.request').error('Internal Server Error: /api/x/'); "
        "logging.getLogger('django.request').warning('Not Found: /api/y/')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "DJANGO_DEBUG": debug,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Internal Server Error: /api/x/") == 1, done.stderr
    # a 4xx's WARNING as Django prints it: with DEBUG on only
    assert done.stderr.count("Not Found: /api/y/") == (debug == "1"), done.stderr


CRON_LINE = re.compile(r"^(\S+\s+){5}.*manage\.py (?P<command>.+)$")


@pytest.mark.django_db
def test_every_command_of_the_example_crontab_runs_and_purges():
    """example_project/crontab (quoted by docs/outbox.md and docs/retention.md): each line is
    a command that exists, with arguments it takes, deleting what it is there to delete."""
    import shlex
    from datetime import timedelta

    from django.utils import timezone

    from django_arc.audit.models import AuditLog
    from django_arc.idempotency.models import IdempotencyRecord
    from django_arc.outbox import OutboxEvent

    old = timezone.now() - timedelta(days=400)
    OutboxEvent.objects.create(
        event_id="e-old", type="products.created", status="delivered", delivered_at=old
    )
    OutboxEvent.objects.create(event_id="e-pending", type="products.created")
    entry = AuditLog.objects.create(action="created", resource="products", object_id="1")
    AuditLog.objects.filter(pk=entry.pk).update(created_at=old)
    AuditLog.objects.create(action="updated", resource="products", object_id="1")
    for path, expires_at in (("/expired/", old), ("/live/", timezone.now() + timedelta(1))):
        IdempotencyRecord.objects.create(
            key=path, fingerprint="f", token="t", method="POST", path=path, expires_at=expires_at
        )

    lines = [
        line
        for line in (ROOT / "example_project/crontab").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    commands = []
    for line in lines:
        match = CRON_LINE.match(line)
        assert match, f"not a crontab line running manage.py: {line}"
        name, *args = shlex.split(match["command"])
        out, err = io.StringIO(), io.StringIO()
        call_command(name, *args, stdout=out, stderr=err)
        # cron mails whatever a line prints: a purge that succeeded prints nothing
        assert (out.getvalue(), err.getvalue()) == ("", ""), line
        commands.append(name)
        # the line it prints when asked (the verbosity the crontab sets aside)
        without = [a for a in args if a not in ("--verbosity", "0")]
        assert without != args, f"a crontab line without --verbosity 0: {line}"
        out = io.StringIO()
        call_command(name, *without, stdout=out)
        assert out.getvalue().startswith("Deleted "), (line, out.getvalue())
    assert commands == ["arc_purge_outbox", "arc_purge_idempotency", "shop_purge_audit_log"]
    assert list(OutboxEvent.objects.values_list("event_id", flat=True)) == ["e-pending"]
    assert list(AuditLog.objects.values_list("action", flat=True)) == ["updated"]
    assert list(IdempotencyRecord.objects.values_list("path", flat=True)) == ["/live/"]
    # cron gives a line no environment: the crontab says to set what the settings read
    # for their database, or each purge runs on the SQLite file, not the shop's PostgreSQL
    text = (ROOT / "example_project/crontab").read_text(encoding="utf-8")
    assert "\n# ARC_EXAMPLE_DB=postgres\n" in text
    # every variable the settings read for their database is named (ARC_PG_PORT was not: a
    # PostgreSQL on another port was not the one the purges reached)
    read = (ROOT / "example_project/example/settings.py").read_text(encoding="utf-8")
    for name in sorted(set(re.findall(r"environ\.get\(\"(ARC_PG_\w+)", read))):
        assert f"# {name}" in text, name
    # the shop's own command refuses an age it cannot count back, as arc_purge_outbox does
    from django.core.management import CommandError

    for days in ("-1", "99999999"):
        with pytest.raises(CommandError, match="--days must be"):
            call_command("shop_purge_audit_log", "--days", days, stdout=io.StringIO())
        with pytest.raises(CommandError, match="--days must be"):  # loud at --verbosity 0
            call_command("shop_purge_audit_log", "--days", days, "--verbosity", "0")
    assert AuditLog.objects.count() == 1


def _example(tmp_path, *argv: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``argv`` run as the example project's process, on an SQLite file of its own."""
    env = {
        **os.environ,
        **environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "ARC_EXAMPLE_DB": "sqlite",
        "ARC_EXAMPLE_SQLITE": str(tmp_path / "cron.sqlite3"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_example_crontab_lines_are_quiet_on_success_and_loud_on_failure(tmp_path):
    """Each purge line printed ``Deleted 0 ...`` on every run, which cron mails where
    ``MAILTO`` is set: a mail an hour saying nothing. Run as cron runs them (a process of
    the example's settings, checks and LOGGING included), each prints nothing and exits 0;
    a purge that fails (here, refused) still says so on stderr and exits 1."""
    migrated = _example(tmp_path, "manage.py", "migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    text = (ROOT / "example_project/crontab").read_text(encoding="utf-8")
    commands = [
        CRON_LINE.match(line)["command"]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(commands) == 3
    for command in commands:
        done = _example(tmp_path, "manage.py", *command.split())
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), command
    failed = _example(tmp_path, "manage.py", "arc_purge_outbox", "--days", "-1", "-v", "0")
    assert failed.returncode == 1
    assert "CommandError" in failed.stderr and "--days" in failed.stderr


def test_the_example_console_log_lines_say_when_how_bad_and_from_where(tmp_path):
    """The example's console handler had no formatter: a line was its message alone
    (``purge_outbox retention_days=7 deleted=0``), with no time, level or logger, so an
    ERROR read as an INFO and nothing said when. Each line now starts with them."""
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django_arc.outbox').info('purge_outbox deleted=%d', 0); "
        "logging.getLogger('django.request').error('Internal Server Error: /api/x/')"
    )
    # DEBUG off: the 500 goes through the example's own "errors" handler (with DEBUG on,
    # Django's default console handler prints it, as Django formats it)
    done = _example(tmp_path, "-c", code, DJANGO_DEBUG="0")
    assert done.returncode == 0, done.stderr
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    lines = done.stderr.splitlines()
    assert any(
        re.fullmatch(rf"{stamp} INFO django_arc.outbox purge_outbox deleted=0", x) for x in lines
    ), lines
    assert any(
        re.fullmatch(rf"{stamp} ERROR django.request Internal Server Error: /api/x/", x)
        for x in lines
    ), lines


def test_with_debug_on_djangos_own_lines_are_formatted_and_said_once(tmp_path):
    """With ``DEBUG`` on (the example's default), Django's own console handler printed
    ``django.request``'s lines (a 404's warning, a 500's error) as the message alone: no
    time, level or logger, unlike every other line. Django's loggers are configured as
    Django's default does, their console handler formatted; each line is printed once."""
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.request').warning('Not Found: /api/nothing/'); "
        "logging.getLogger('django.request').error('Internal Server Error: /api/x/'); "
        "logging.getLogger('django').debug('not printed')"
    )
    done = _example(tmp_path, "-c", code, DJANGO_DEBUG="1")
    assert done.returncode == 0, done.stderr
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    lines = done.stderr.splitlines()
    assert [x for x in lines if "/api/" in x or "not printed" in x] == [
        x
        for x in lines
        if re.fullmatch(
            rf"{stamp} (WARNING|ERROR) django.request (Not Found|Internal Server Error): /api/(nothing|x)/",
            x,
        )
    ], lines
    assert len([x for x in lines if "/api/" in x]) == 2, lines


@pytest.mark.django_db
def test_the_example_erasure_leaves_no_copy_of_a_deleted_product(example_settings_on):
    """docs/retention.md's erasure is the example's ``shop.retention.erase``: after a keyed
    create, update and hard delete of a product through the shop's API, it leaves no copy
    of the product's values in django-arc's tables. It deletes the keyed answers of that
    product only: it deleted every keyed answer under ``/api/products/``, another
    organization's too, whose retry within ``TTL_SECONDS`` then ran again (a second create,
    here a 409 for its own sku) instead of being answered its stored 201."""
    from django_arc.audit.models import AuditLog
    from django_arc.idempotency.models import IdempotencyRecord
    from django_arc.outbox import OutboxEvent, get_outbox
    from shop.retention import erase

    name = "Jane Q. Erasable"

    def holding() -> dict[str, int]:
        return {
            "outbox": sum(name in str(r.payload) for r in OutboxEvent.objects.all()),
            "audit": sum(name in str(r.before) + str(r.after) for r in AuditLog.objects.all()),
            "idempotency": sum(
                name.encode() in bytes(r.body or b"") for r in IdempotencyRecord.objects.all()
            ),
        }

    def create(client, sku, product, key):
        answer = client.post(
            "/api/products/",
            {"name": product, "sku": sku, "price": "1.00"},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        assert answer.status_code == 201, answer.content
        return answer

    seed("--quiet")
    client, globex = Client(), Client()
    assert client.login(username="acme-admin", password="demo12345")
    assert globex.login(username="globex-admin", password="demo12345")
    created = create(client, "ERASE-1", name, "erase-1")
    pk = created.json()["data"]["id"]
    renamed = client.patch(
        f"/api/products/{pk}/",
        {"name": name + " Jr."},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="erase-2",
    )
    assert renamed.status_code == 200, renamed.content
    deleted = client.delete(f"/api/products/{pk}/", HTTP_IDEMPOTENCY_KEY="erase-3")
    assert deleted.status_code == 200, deleted.content
    # another product of the same organization, and one of another organization, both keyed
    kept = create(client, "KEPT-1", "Kept", "kept-1")
    theirs = create(globex, "THEIRS-1", "Theirs", "theirs-1")
    while get_outbox().relay_batch().attempted:
        pass
    assert holding() == {"outbox": 2, "audit": 3, "idempotency": 2}

    erase("products", str(pk), "/api/products/")
    assert holding() == {"outbox": 0, "audit": 0, "idempotency": 0}
    assert not OutboxEvent.objects.filter(meta__resource_id=str(pk)).exists()
    assert not IdempotencyRecord.objects.filter(path__startswith=f"/api/products/{pk}/").exists()
    # another product's event, audit entry and keyed answer stay: a retry is still a replay
    kept_id = str(kept.json()["data"]["id"])
    assert OutboxEvent.objects.filter(meta__resource_id=kept_id).count() == 1
    assert AuditLog.objects.filter(object_id=kept_id).count() == 1
    assert IdempotencyRecord.objects.count() == 2
    for caller, sku, product, key, first in (
        (client, "KEPT-1", "Kept", "kept-1", kept),
        (globex, "THEIRS-1", "Theirs", "theirs-1", theirs),
    ):
        assert create(caller, sku, product, key).content == first.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, headers, status, shape",
    [
        ("/api/schema/?format=bogus", {}, 404, "detail:"),
        ("/api/schema/?lang=xx", {}, 200, "openapi: 3.0.3"),
        ("/api/schema/?lang=%00", {}, 200, "openapi: 3.0.3"),
        ("/api/schema/?version=zz", {}, 200, "openapi: 3.0.3"),
        ("/api/schema/", {"HTTP_ACCEPT": "application/xml"}, 406, "detail:"),
        ("/api/schema/", {"HTTP_X_API_KEY": "nope"}, 401, "detail:"),
        ("/api/docs/?format=bogus", {}, 404, ""),
        ("/api/docs/?lang=xx", {}, 200, "<!DOCTYPE html>"),
        ("/api/redoc/?format=bogus", {}, 404, ""),
        ("/api/redoc/?lang=xx", {}, 200, "<!DOCTYPE html>"),
    ],
)
def test_the_schema_and_docs_views_answer_their_errors_in_their_own_shapes(
    example_settings_on, path, headers, status, shape
):
    """The example mounts drf-spectacular's views under ``/api/``; they are the project's,
    not arc's, and answer as drf-spectacular does (decisions.md, fix-seen8b): an unknown
    ``?format=``, an ``Accept`` they cannot render and a refused key are DRF's
    ``{"detail"}`` rendered as the schema's YAML, the docs pages' 404 is Django's; an
    unknown ``?lang=`` or ``?version=`` is ignored. None is a 500."""
    response = Client(raise_request_exception=False).get(path, **headers)
    assert response.status_code == status, response.content[:300]
    assert response.content.decode().lstrip().startswith(shape)
