"""The outbox dead-letter workflow in a real browser (Debian's Chromium driven by Playwright).

An operator logs into the admin, filters the outbox to dead events, ticks some, runs
"Requeue selected" and sees them pending again. A screenshot of the result is saved under
``tests/artifacts/`` (git-ignored) for humans reviewing CI runs.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from django_arc.outbox import OutboxEvent


def chromium_path() -> str | None:
    """The Chromium ``scripts/ensure-browser.sh`` accepts, looked up as it does: Debian's
    ``chromium`` first, then ``chromium-browser``. Looking for ``chromium`` only, a machine
    with ``chromium-browser`` passed ``make test``'s check and skipped every browser test."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = chromium_path()
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (make test installs it)"
    ),
]


def keep(png: bytes, name: str) -> bytes:
    """The screenshot in ``tests/artifacts/`` for a person to look at, written whole at once:
    two runs side by side (``make test``'s lanes) write the same name, and a reader of the
    file could have seen the other run's half-written one."""
    ARTIFACTS.mkdir(exist_ok=True)
    partial = ARTIFACTS / f".{name}.{os.getpid()}"
    partial.write_bytes(png)
    os.replace(partial, ARTIFACTS / name)
    return png


def _dead(type: str, error: str) -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_id=str(uuid.uuid4()),
        type=type,
        payload={"id": 1},
        meta={"resource": type.split(".")[0]},
        status="dead",
        attempts=8,
        last_error=error,
    )


@pytest.mark.django_db(transaction=True)
def test_operator_requeues_dead_events_in_the_admin(live_server, django_user_model, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls below are plain
    # blocking calls made between browser steps, which is safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    django_user_model.objects.create_superuser("ops", "ops@example.com", "s3cret-pw")
    first = _dead("payments.captured", "ConnectionError: broker unreachable")
    second = _dead("orders.created", "TimeoutError: publish timed out")
    untouched = _dead("orders.updated", "ValueError: bad payload")
    pending = OutboxEvent.objects.create(event_id=str(uuid.uuid4()), type="orders.created")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(f"{live_server.url}/admin/login/?next=/admin/django_arc/outboxevent/")
            page.fill("#id_username", "ops")
            page.fill("#id_password", "s3cret-pw")
            page.click("input[type=submit]")
            expect(page.locator("#result_list")).to_be_visible()
            expect(page.locator("#result_list tbody tr")).to_have_count(4)

            # Filter: By status -> dead (the sidebar link, as an operator would).
            page.locator("#changelist-filter a[href*='status__exact=dead']").click()
            rows = page.locator("#result_list tbody tr")
            expect(rows).to_have_count(3)
            assert "status__exact=dead" in page.url

            for row in (first, second):
                page.locator(
                    f"#result_list tbody tr:has-text('{row.event_id}') input.action-select"
                ).check()
            page.select_option("select[name=action]", "requeue_selected")
            page.click("button[name=index]")

            expect(page.locator(".messagelist")).to_contain_text("Requeued 2 dead event(s).")
            # Still filtered on dead: only the row we did not select is left.
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text(untouched.event_id)

            page.locator("#changelist-filter a[href*='status__exact=pending']").click()
            expect(rows).to_have_count(3)
            for row in (first, second, pending):
                expect(page.locator("#result_list")).to_contain_text(row.event_id)
            requeued = keep(page.screenshot(full_page=True), "admin_outbox_requeue.png")

            # The dead-letter page shows what is still dead, with its full error.
            page.goto(f"{live_server.url}/admin/django_arc/outboxevent/dead-letters/")
            expect(page.locator("tr.dead-row")).to_have_count(1)
            expect(page.locator("#dead-letters")).to_contain_text("ValueError: bad payload")
            keep(page.screenshot(full_page=True), "admin_outbox_dead_letters.png")
        finally:
            browser.close()

    statuses = dict(OutboxEvent.objects.values_list("event_id", "status"))
    assert statuses[first.event_id] == "pending"
    assert statuses[second.event_id] == "pending"
    assert statuses[untouched.event_id] == "dead"
    assert statuses[pending.event_id] == "pending"
    assert OutboxEvent.objects.get(pk=first.pk).attempts == 0
    assert len(requeued) > 10_000
