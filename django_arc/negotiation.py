"""Content negotiation that remembers its answers.

DRF's :class:`~rest_framework.negotiation.DefaultContentNegotiation` parses the ``Accept``
header and every renderer's media type on each request, yet its answer depends only on those
strings and the requested format. A resource view asks it on every request, cache hits
included, where that parsing is a large share of the work, so
:class:`ArcContentNegotiation` keeps the answer per distinct question. The view uses it in
place of DRF's default class only (a project's own negotiator is left alone).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework.negotiation import DefaultContentNegotiation

from . import querystring
from .exceptions import InvalidQuery

#: answers kept per process; the ``Accept`` header is the client's, so the memo is bounded
MAX_REMEMBERED = 256

_answers: dict[tuple[Any, ...], tuple[int, str]] = {}


class ArcContentNegotiation(DefaultContentNegotiation):
    """DRF's default negotiation, answered from memory for a question it has seen before.

    The question is the ``Accept`` header, the format asked for (suffix or ``?format=``) and
    each renderer's media type and format; the memo holds which renderer answered (by
    position) and the media type, never a renderer instance, since a renderer may keep state
    for the response it renders. Refusals (406, an unknown format) are not remembered.
    """

    def select_renderer(
        self, request: Any, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        # DRF reads ``request.query_params``; the same answer without parsing the query
        format_ = format_suffix or querystring.param(request, self.settings.URL_FORMAT_OVERRIDE)
        # ``META`` read from the Django request: a DRF request hands it over only through
        # its ``__getattr__``, after Python's own lookup has failed
        question = (
            getattr(request, "_request", request).META.get("HTTP_ACCEPT", "*/*"),
            format_,
            tuple((r.media_type, r.format) for r in renderers),
        )
        known = _answers.get(question)
        if known is not None:
            return renderers[known[0]], known[1]
        renderer, media_type = super().select_renderer(request, renderers, format_suffix)
        if len(_answers) >= MAX_REMEMBERED:
            _answers.clear()
        _answers[question] = (renderers.index(renderer), media_type)
        return renderer, media_type


class FormatQueryMixin:
    """A view's ``?format=`` naming no renderer of it is a 400 ``INVALID_QUERY`` naming the
    parameter, like any other bad query parameter: DRF raises ``Http404`` for it, which
    reads "Resource not found". Resource views and the API root both answer so.

    The parameter is the one the client sent: DRF's ``URL_FORMAT_OVERRIDE`` (``format``
    unless the project renamed it). A format suffix of the path (a project's own
    ``format_suffix_patterns`` routes) is no query parameter: its ``Http404`` stays the 404
    of a path that names nothing. The formats listed are the renderers' that have one (a
    ``BaseRenderer`` subclass may leave ``format`` ``None``: no ``?format=`` selects it)."""

    def perform_content_negotiation(self, request: Any, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)  # type: ignore[misc]
        except Http404:
            if getattr(self, "format_kwarg", None):
                raise
            param = self.settings.URL_FORMAT_OVERRIDE or "format"  # type: ignore[attr-defined]
            formats = (r.format for r in self.get_renderers())  # type: ignore[attr-defined]
            known = ", ".join(dict.fromkeys(f for f in formats if f))
            raise InvalidQuery(param, f"unknown format; one of: {known}") from None
