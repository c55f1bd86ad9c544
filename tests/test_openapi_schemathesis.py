"""schemathesis against the example project, as an admin, a viewer and anonymously.

Every check is on (server errors, status codes, content types, response headers and schemas,
positive data accepted, negative data rejected, missing headers, unsupported methods, auth
actually enforced, use after free, resource availability). The example project runs for real
(``tests/example_server.py``) on its seeded demo data, and the schema under test is the one it
serves at ``/api/schema/``.

What no OpenAPI document can say is supplied here, and counted (``adapted: …`` in the
statistics the last test prints):

- (positive cases) which rows exist: the ``{id}`` of the detail routes gets the ids of real rows of the
  caller's organization as examples (the schema's links carry them in the stateful test), and
  an order's ``product`` is a real product, since any other integer is "does not exist";
- (positive cases) that ``after`` is an opaque cursor from a previous page that excludes
  ``page``: a positive case asks for the first keyset page (``after=``) instead of a made-up cursor;
- that asking for elevation is 403 for anyone but a platform admin, whatever else the
  request says: ``X-Arc-Scope`` is sent only in the cases generated for it, and members send
  their organization (the anonymous run sends random ones);
- that an ``Idempotency-Key`` names one request: sent again with another body or query it is
  422 ``IDEMPOTENCY_KEY_REUSED``, whichever case used it first. Cases not generated for the
  header send a key derived from the request instead, so a request sent twice is replayed.

All of it is recorded in ``docs/decisions.md``. The budget is small and the seed fixed, so the
run is fast and reproducible; ``ARC_SCHEMATHESIS_EXAMPLES``, ``ARC_SCHEMATHESIS_SCENARIOS``
and ``ARC_SCHEMATHESIS_SEED`` widen or vary it (``ARC_SCHEMATHESIS_FULL=1``: every phase under
Django 4.2 too).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from typing import Any

import django
import pytest
import requests
import schemathesis
from hypothesis import settings
from schemathesis.core.parameters import ParameterLocation

from tests.example_server import ExampleServer

MAX_EXAMPLES = int(os.environ.get("ARC_SCHEMATHESIS_EXAMPLES", "6"))
SEED = int(os.environ.get("ARC_SCHEMATHESIS_SEED", "20240611"))
STATEFUL_SCENARIOS = int(os.environ.get("ARC_SCHEMATHESIS_SCENARIOS", "20"))
#: the Django 4.2 runs of ``make test`` (the floor) only replay the examples and the links
SMOKE = os.environ.get("ARC_SCHEMATHESIS_FULL") != "1" and django.VERSION < (5,)
ROLES = {"admin": "acme-admin", "viewer": "acme-viewer", "anonymous": None}
ELEVATION = "X-Arc-Scope"
IDEMPOTENCY_KEY = "Idempotency-Key"
#: the seeded orders of Acme (seed_demo derives their references from this namespace)
ORDER_NAMESPACE = uuid.UUID("6f1c7a2e-8a57-4d3c-9a8e-2f7c1d0b5e11")

#: what each role's run saw: cases sent, and status codes per operation
STATS: dict[str, Counter[str]] = {role: Counter() for role in ROLES}


def config(server: ExampleServer, role: str) -> schemathesis.Config:
    """Every check; the examples, fuzzing and stateful phases for every role, and the
    coverage phase (boundary and invalid values of every parameter, undeclared methods,
    missing headers: ~1,100 cases) for the admin, whose cases get past the permission
    checks (the viewer's writes and all anonymous calls stop there, and its reads run the
    admin's code). Django 4.2 runs (the floor) replay the examples and links only."""
    parameters: dict[str, Any] = {}
    if ROLES[role]:
        # Members act in Acme; a random organization header would turn most of their cases
        # into the same 403 ORG_REQUIRED (the anonymous run sends random ones).
        parameters["header.X-Organization-Id"] = "1"
    phases: dict[str, Any] = {
        "coverage": {"enabled": role == "admin"},
        # Only the schema's own links: the inferred ones guess that every "*id" field is an
        # "id" (an order's is its ``reference``) and even fill headers with them.
        "stateful": {"inference": {"algorithms": []}},
    }
    if SMOKE:
        phases.update(coverage={"enabled": False}, fuzzing={"enabled": False})
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": server.url,
            "cache": {"enabled": False},
            "warnings": False,
            "parameters": parameters,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": phases,
        }
    )


def real_rows(server: ExampleServer, role: str = "admin") -> dict[str, list[Any]]:
    """Ids of Acme's seeded rows: products that orders point at (``PROTECT``ed, so they
    survive the admin's deletes) and, per role, different orders (the admin deletes its
    examples, which must not leave the viewer only 404s)."""
    admin = server.login("acme-admin")
    orders = requests.get(
        f"{server.url}/api/orders/",
        params={"limit": 100, "select": "product"},
        cookies=admin.cookies,
        timeout=10,
    ).json()["docs"]
    products = sorted({order["product"] for order in orders})
    first = list(ROLES).index(role)
    references = [str(uuid.uuid5(ORDER_NAMESPACE, f"acme-{i}")) for i in range(first, 100, 7)]
    return {"/api/products/{id}/": products[:12], "/api/orders/{id}/": references}


def with_examples(raw: dict[str, Any], rows: dict[str, list[Any]]) -> dict[str, Any]:
    """The served schema, with real ids as examples of the detail routes' ``{id}``."""
    for path, ids in rows.items():
        for operation in raw["paths"].get(path, {}).values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "id":
                    parameter["examples"] = {f"row{i}": {"value": v} for i, v in enumerate(ids)}
    return raw


def load_schema(server: ExampleServer, role: str) -> Any:
    raw = requests.get(f"{server.url}/api/schema/?format=json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(
        with_examples(raw, real_rows(server, role)), config=config(server, role)
    )
    username = ROLES[role]
    if username is not None:
        login = server.login(username)

        class SessionAuth:
            """The session cookie (plus the CSRF pair unsafe methods need): schemathesis
            treats it as the configured credentials and drops random ones for the other
            schemes."""

            def get(self, case: Any, context: Any) -> Any:
                return login

            def set(self, case: Any, data: Any, context: Any) -> None:
                case.cookies = {**(case.cookies or {}), **data.cookies}
                case.headers = {**(case.headers or {}), **data.headers}

        schema.auth()(SessionAuth)
    return schema


def positive_at(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


def targets(case: Any, name: str) -> bool:
    """Whether the case was generated to exercise the parameter ``name``."""
    data = case.meta.phase.data if case.meta is not None else None
    if getattr(data, "parameter", None) == name:
        return True
    return any(m.parameter == name for m in getattr(data, "mutations", ()) or ())


def adapt(case: Any, role: str, products: list[int]) -> None:
    """What the schema cannot express (module docstring), for positive cases only. Each
    adaptation is counted in ``STATS`` (``adapted …``)."""
    stats = STATS[role]
    headers = case.headers
    if isinstance(headers, dict) and ELEVATION in headers and not targets(case, ELEVATION):
        stats["adapted: X-Arc-Scope dropped"] += 1
        # Anyone but a platform admin asking for elevation is 403 whatever else the request
        # says: the coverage phase sends every optional header with each case, which would
        # hide every other parameter behind that 403. It is sent in the cases about it.
        headers.pop(ELEVATION, None)
    query = case.query
    if isinstance(query, dict) and "after" in query and positive_at(case, ParameterLocation.QUERY):
        stats["adapted: after made empty"] += query["after"] != ""
        stats["adapted: page dropped (after)"] += "page" in query
        query["after"] = ""
        query.pop("page", None)
    body = case.body
    if (
        (case.path == "/api/orders/{id}/" or case.path == "/api/orders/")
        and isinstance(body, dict)
        and "product" in body
        and positive_at(case, ParameterLocation.BODY)
    ):
        value = body["product"]
        stats["adapted: product made real"] += 1
        body["product"] = products[value % len(products) if isinstance(value, int) else 0]
    if (
        case.path == "/api/products/bulk/"
        and isinstance(body, dict)
        and positive_at(case, ParameterLocation.BODY)
    ):
        # like a detail route's {id}: the ids a bulk update or delete names must exist
        real = [
            products[value % len(products) if isinstance(value, int) else 0]
            for value in body.get("ids") or ()
        ]
        if real:
            stats["adapted: bulk ids made real"] += 1
            body["ids"] = list(dict.fromkeys(real))
        items = body.get("items")
        if isinstance(items, list) and any(isinstance(i, dict) and "id" in i for i in items):
            # each row once (an id given twice is an indexed error the schema cannot say)
            stats["adapted: bulk item ids made real"] += 1
            del items[len(products) :]
            for index, item in enumerate(items):
                item["id"] = products[index]
    if (
        isinstance(headers, dict)
        and IDEMPOTENCY_KEY in headers
        and positive_at(case, ParameterLocation.HEADER)
        and not targets(case, IDEMPOTENCY_KEY)
    ):
        # last: the key names the request as it is sent, after the adaptations above
        stats["adapted: Idempotency-Key derived from the request"] += 1
        request = [case.method, case.path, case.path_parameters, case.query, case.body]
        material = json.dumps(request, sort_keys=True, default=repr).encode()
        headers[IDEMPOTENCY_KEY] = hashlib.sha256(material).hexdigest()


@pytest.fixture(scope="module")
def seeded_products(example_server: ExampleServer) -> list[int]:
    return real_rows(example_server)["/api/products/{id}/"]


def run_case(role: str, case: Any, products: list[int]) -> None:
    adapt(case, role, products)
    response = case.call_and_validate()
    STATS[role]["cases"] += 1
    STATS[role][f"{case.method} {case.path} {response.status_code}"] += 1


@pytest.fixture(scope="module")
def admin_schema(example_server: ExampleServer) -> Any:
    return load_schema(example_server, "admin")


@pytest.fixture(scope="module")
def viewer_schema(example_server: ExampleServer) -> Any:
    return load_schema(example_server, "viewer")


@pytest.fixture(scope="module")
def anonymous_schema(example_server: ExampleServer) -> Any:
    return load_schema(example_server, "anonymous")


admin = schemathesis.pytest.from_fixture("admin_schema")
viewer = schemathesis.pytest.from_fixture("viewer_schema")
anonymous = schemathesis.pytest.from_fixture("anonymous_schema")


@admin.parametrize()
def test_example_api_as_admin(case: Any, seeded_products: list[int]) -> None:
    run_case("admin", case, seeded_products)


@viewer.parametrize()
def test_example_api_as_viewer(case: Any, seeded_products: list[int]) -> None:
    run_case("viewer", case, seeded_products)


@anonymous.parametrize()
def test_example_api_anonymously(case: Any, seeded_products: list[int]) -> None:
    run_case("anonymous", case, seeded_products)


PROBE = {"name": "Snapshot probe", "sku": "SNAP-1", "price": "1.00"}


def test_the_example_server_restores_its_snapshot(example_server: ExampleServer) -> None:
    """What each stateful scenario starts from: a row deleted after the snapshot is back,
    one created is gone and the next one gets its id again, and the cached list is read anew."""
    admin = example_server.login("acme-admin")
    kwargs: dict[str, Any] = {
        "cookies": admin.cookies,
        "headers": {**admin.headers, "X-Organization-Id": "1"},
        "timeout": 10,
    }
    url = f"{example_server.url}/api/products/"

    def names() -> list[str]:
        response = requests.get(url, params={"limit": 100}, **kwargs)
        assert response.status_code == 200, response.text
        return sorted(doc["name"] for doc in response.json()["docs"])

    before = names()
    assert before
    example_server.snapshot()
    created = requests.post(url, json=PROBE, **kwargs)
    assert created.status_code == 201, created.text
    assert "Snapshot probe" in names()  # cached while the row exists
    example_server.restore()
    assert names() == before
    again = requests.post(url, json=PROBE, **kwargs)
    assert again.status_code == 201, again.text
    assert again.json()["data"]["id"] == created.json()["data"]["id"]
    example_server.restore()
    assert names() == before


def run_statefully(role: str, schema: Any, products: list[int], server: ExampleServer) -> None:
    """Scenarios that follow the schema's links: ids from the list and create responses
    (``$response.body#/docs/0/id``, ``#/data/id``) feed the detail routes.

    Each scenario starts from the rows the run started with (and no cached answer):
    Hypothesis replays the steps it chose before to try others, and a scenario whose
    responses differed with the rows an earlier one left (a row deleted, a 404 where a 200
    fed a link) drew otherwise on its replay, which Hypothesis refuses (``FlakyStrategy
    Definition``: the admin's run failed so whenever the example cases had not run first,
    ``-k statefully``); and what it reached depended on the tests that ran before it. The
    rows are put back when the run ends, so the next run starts from them too."""
    server.snapshot()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            server.restore()

        def before_call(self, case: Any) -> None:
            adapt(case, role, products)

        def after_call(self, response: Any, case: Any) -> None:
            STATS[role]["stateful cases"] += 1
            STATS[role][f"stateful {case.method} {case.path} {response.status_code}"] += 1

        def step(self, input: Any) -> Any:
            output = super().step(input)
            if input.transition is not None and ("path", "id") in [
                (getattr(location, "value", location), name)
                for location, name in input.applied_parameters
            ]:
                case = input.case
                STATS[role][f"linked {case.method} {case.path} {output.response.status_code}"] += 1
            return output

    try:
        Workflow.run(
            settings=settings(
                Workflow.TestCase.settings,
                max_examples=STATEFUL_SCENARIOS,
                stateful_step_count=6,
                derandomize=True,
                database=None,
            )
        )
    finally:  # the next run (the viewer's) starts from these rows, not the last scenario's
        server.restore()


def test_example_api_statefully_as_admin(
    admin_schema: Any, seeded_products: list[int], example_server: ExampleServer
) -> None:
    run_statefully("admin", admin_schema, seeded_products, example_server)


def test_example_api_statefully_as_viewer(
    viewer_schema: Any, seeded_products: list[int], example_server: ExampleServer
) -> None:
    run_statefully("viewer", viewer_schema, seeded_products, example_server)


def test_the_runs_reached_real_rows_and_every_operation() -> None:
    """The runs above were not all 401/404: the admin read, changed and deleted real rows
    (examples and links), the viewer read them and was refused writes, and the anonymous
    caller was asked to authenticate everywhere."""
    admin, viewer, anonymous = STATS["admin"], STATS["viewer"], STATS["anonymous"]
    for role, stats in STATS.items():
        print(
            role,
            stats["cases"],
            "cases:",
            dict(sorted((k, v) for k, v in stats.items() if k != "cases")),
        )
    if not admin["cases"]:
        pytest.skip("run together with the schemathesis tests above")
    for operation in (
        "GET /api/products/{id}/",
        "GET /api/orders/{id}/",
        "PATCH /api/products/{id}/",
    ):
        assert admin[f"{operation} 200"] > 0, operation
    assert admin["DELETE /api/orders/{id}/ 200"] > 0
    # the links carried real ids from one response to the next request
    followed = [k for k, n in admin.items() if k.startswith("linked") and "{id}/ 20" in k and n]
    assert followed, "no request reached a row through a link"
    assert admin["POST /api/products/ 201"] + admin["stateful POST /api/products/ 201"] > 0
    assert viewer["GET /api/products/{id}/ 200"] > 0 and viewer["GET /api/orders/{id}/ 200"] > 0
    assert viewer["PATCH /api/products/{id}/ 403"] > 0
    # refused everywhere: 401, or 403 when it asked for an organization or elevation
    assert anonymous["GET /api/products/{id}/ 401"] + anonymous["GET /api/products/{id}/ 403"]
    assert not any(key.endswith((" 200", " 201")) for key in anonymous)
