"""Hypothesis stateful test: random actors from two orgs create, update, delete and list;
an oracle checks that no response ever shows a row of another org and no row changes org."""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from rest_framework.test import APIClient

from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

ACTORS = ["a_admin", "a_editor", "b_admin", "b_editor"]


def build_world():
    orgs = {"a": OrganizationFactory(), "b": OrganizationFactory()}
    clients = {}
    for actor in ACTORS:
        org_key, role = actor.split("_")
        user = MembershipFactory(organization=orgs[org_key], role=role).user
        client = APIClient()
        client.force_authenticate(user)
        client.credentials(HTTP_X_ORGANIZATION_ID=str(orgs[org_key].pk))
        clients[actor] = client
    return orgs, clients


class TenancyMachine(RuleBasedStateMachine):
    orgs: dict = {}
    clients: dict = {}

    def __init__(self):
        super().__init__()
        Product.objects.all().delete()
        self.model: dict[int, int] = {}  # pk -> org pk (the oracle)
        self.counter = 0

    def org_of(self, actor):
        return self.orgs[actor[0]].pk

    def other_org(self, actor):
        return self.orgs["b" if actor[0] == "a" else "a"].pk

    @rule(actor=st.sampled_from(ACTORS), inject=st.sampled_from([None, "own", "other"]))
    def create(self, actor, inject):
        self.counter += 1
        body = {"name": f"p{self.counter}", "sku": f"S{self.counter}", "price": "1.00"}
        if inject == "own":
            body["organization"] = self.org_of(actor)
        elif inject == "other":
            body["organization"] = self.other_org(actor)
        r = self.clients[actor].post("/api/t-products/", body, format="json")
        if inject == "other":
            assert r.status_code == 403, r.content
            return
        assert r.status_code == 201, r.content
        assert r.json()["data"]["organization"] == self.org_of(actor)
        self.model[r.json()["data"]["id"]] = self.org_of(actor)

    @rule(
        actor=st.sampled_from(ACTORS),
        pick=st.integers(min_value=0, max_value=50),
        inject=st.booleans(),
    )
    def update(self, actor, pick, inject):
        if not self.model:
            return
        pk = sorted(self.model)[pick % len(self.model)]
        body = {"name": f"u{pick}"}
        if inject:
            body["organization"] = self.other_org(actor)
        r = self.clients[actor].patch(f"/api/t-products/{pk}/", body, format="json")
        if self.model[pk] != self.org_of(actor):
            assert r.status_code == 404, r.content
        elif inject:
            assert r.status_code == 403, r.content
        else:
            assert r.status_code == 200, r.content
            assert r.json()["data"]["organization"] == self.model[pk]

    @rule(
        actor=st.sampled_from(["a_admin", "b_admin"]), pick=st.integers(min_value=0, max_value=50)
    )
    def delete(self, actor, pick):
        if not self.model:
            return
        pk = sorted(self.model)[pick % len(self.model)]
        r = self.clients[actor].delete(f"/api/t-products/{pk}/")
        if self.model[pk] != self.org_of(actor):
            assert r.status_code == 404
        else:
            assert r.status_code == 200
            del self.model[pk]

    @rule(
        actor=st.sampled_from(ACTORS),
        query=st.sampled_from(
            [
                "",
                "?organization={other}",
                "?organization[ne]={own}",
                "?organization[in]={own},{other}",
                "?search=p",
                "?sort=-price&limit=100",
            ]
        ),
    )
    def list(self, actor, query):
        url = "/api/t-products/" + query.format(own=self.org_of(actor), other=self.other_org(actor))
        r = self.clients[actor].get(url + ("&" if "?" in url else "?") + "limit=100")
        assert r.status_code == 200, r.content
        for doc in r.json()["docs"]:
            assert doc["organization"] == self.org_of(actor)
            assert self.model[doc["id"]] == self.org_of(actor)
        if query == "":
            mine = {pk for pk, org in self.model.items() if org == self.org_of(actor)}
            assert {d["id"] for d in r.json()["docs"]} == mine

    @invariant()
    def rows_never_change_org(self):
        actual = dict(Product.objects.values_list("pk", "organization_id"))
        assert actual == self.model


def test_no_cross_tenant_leak_or_move():
    orgs, clients = build_world()
    TenancyMachine.orgs, TenancyMachine.clients = orgs, clients
    run_state_machine_as_test(
        TenancyMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
