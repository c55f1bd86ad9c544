"""The floors of ``cache.py``: what the server answers when the view does nothing."""

from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView


def noop(request: HttpRequest) -> HttpResponse:
    """Django alone: URL resolution, middleware, a constant JSON body."""
    return HttpResponse(b'{"success":true}', content_type="application/json")


class DrfNoop(APIView):
    """DRF's request wrapping, negotiation and rendering around a constant body."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request: object) -> Response:
        return Response({"success": True})
