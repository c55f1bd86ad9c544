"""Swagger UI and Redoc of the example project, offline, in a real browser.

The example project serves both from drf-spectacular-sidecar's static files. Chromium (with
its network features off, as on a machine without internet) opens ``/api/docs/`` and
``/api/redoc/`` on the served example project and must see every operation rendered, having
requested nothing from any other host. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.test_admin_outbox_browser import CHROMIUM, LAUNCH_ARGS

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
GOLDEN = Path(__file__).resolve().parent / "openapi" / "example_project.yaml"
#: the example project's operations, as Swagger UI and Redoc title them (the summaries of the
#: committed schema, which tests/test_openapi_golden.py keeps equal to the served one)
SUMMARIES = [
    operation["summary"]
    for path in yaml.safe_load(GOLDEN.read_text())["paths"].values()
    for method, operation in path.items()
    if method != "parameters"
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (make test installs it)"
    ),
]


@pytest.fixture
def browser_page(example_server, monkeypatch):
    """A Chromium page that can reach the example server and nothing else, as without
    internet; ``elsewhere`` collects what the page tried to fetch from other hosts."""
    # Playwright's sync API runs an event loop in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    # expect()'s own 5 s default, not the page's: under a loaded machine (make test beside
    # other runs) Redoc took longer than that to lay out its menu from the 215 KB schema
    expect.set_options(timeout=20_000)

    server = urlparse(example_server.url).netloc
    elsewhere: list[str] = []

    def offline(route):
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https") and url.netloc != server:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.route("**/*", offline)
            yield page, elsewhere
        finally:
            browser.close()


def test_swagger_ui_renders_every_operation_offline(example_server, browser_page):
    from playwright.sync_api import expect

    page, elsewhere = browser_page
    page.goto(f"{example_server.url}/api/docs/")
    operations = page.locator(".opblock")
    expect(operations).to_have_count(len(SUMMARIES))
    for summary in SUMMARIES:
        expect(page.locator(".opblock-summary-description", has_text=summary).first).to_be_visible()
    # an operation opens with its parameters: the query language is documented
    page.locator("#operations-products-products_list .opblock-summary").click()
    expect(page.locator("#operations-products-products_list")).to_contain_text("price[gte]")
    expect(page.locator("#operations-products-products_list")).to_contain_text("X-Organization-Id")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"), full_page=True)
    assert elsewhere == []


def test_redoc_renders_every_operation_offline(example_server, browser_page):
    from playwright.sync_api import expect

    page, elsewhere = browser_page
    page.goto(f"{example_server.url}/api/redoc/")
    menu = page.locator("[role=menuitem]", has_text="List products").first
    expect(menu).to_be_visible()
    for summary in SUMMARIES:
        expect(page.locator("h2", has_text=summary).first).to_be_attached()
    expect(page.locator("body")).to_contain_text("A page of the products the caller may see")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "redoc.png"))
    # Redoc's "powered by" logo is the one thing it fetches from elsewhere; it drops the
    # image when that fails. Scripts, styles and fonts all came from the example server.
    assert set(elsewhere) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
