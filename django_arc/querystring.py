"""The query string of a request, read without parsing it where the answer allows.

Django parses ``request.GET`` into a ``QueryDict`` on first access, a sizeable share of
what a cache HIT costs (see the decisions page). A HIT needs the parameters for two
questions only, and neither needs them parsed: content negotiation asks whether
``?format=`` was sent, and the query cache looks up the parsed query it remembered for
them. Both can be answered from the query string as it arrived, as long as that string is
still what ``GET`` would be parsed from: ``GET`` is not in the request's ``__dict__``, so
nothing has parsed it, nor replaced it (a middleware assigning ``request.GET`` puts it
there too). Otherwise, an ASGI request included (it parses ``GET`` up front), ``GET`` is
read.
"""

from __future__ import annotations

import re
from typing import Any

#: names spelled the same in a raw query string and a parsed one (no ``+``, no escapes)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._~-]+")


def _unparsed(django_request: Any) -> str | None:
    """The raw query string of a Django request while ``GET`` is still to be parsed from
    it; ``None`` once ``GET`` exists."""
    if "GET" in django_request.__dict__:
        return None
    environ = getattr(django_request, "environ", None)
    if environ is None:
        return None
    return environ.get("QUERY_STRING", "")


def param(request: Any, name: str | None) -> str | None:
    """``request.GET.get(name)`` (a Django or DRF request), without parsing ``GET`` when the
    raw query string cannot hold ``name``: a plain name is in a parsed query only if it is
    in the raw one, spelled as is or with a percent escape."""
    if name is None:
        return None
    django_request = getattr(request, "_request", request)
    raw = _unparsed(django_request)
    if raw is not None and "%" not in raw and name not in raw and _PLAIN_NAME.fullmatch(name):
        return None
    return django_request.GET.get(name)


def key(request: Any) -> tuple[Any, ...]:
    """A key equal for two requests (Django's or DRF's) only when their ``GET`` is equal:
    the raw query string and the encoding it is decoded with while ``GET`` is unparsed,
    else the parsed parameters."""
    django_request = getattr(request, "_request", request)
    raw = _unparsed(django_request)
    if raw is not None:
        return ("raw", django_request.encoding, raw)
    params = django_request.GET
    return ("parsed", tuple((name, tuple(values)) for name, values in params.lists()))
