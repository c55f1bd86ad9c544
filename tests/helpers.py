"""Small helpers the HTTP tests share."""

from rest_framework.test import APIClient


def client_for(user=None, **headers):
    """An API client authenticated as ``user`` (anonymous when None), sending ``headers``."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    client.credentials(**headers)
    return client


def assert_error(response, status, code):
    """The error envelope with ``status`` and ``code``; returns the body."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    return body
