"""``django_arc.querystring``: a request's query parameters read from the query string as
sent, without parsing ``GET``, only where that gives ``GET``'s own answer."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from django.http import QueryDict
from django.test import RequestFactory
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request

from django_arc import querystring
from tests.budget import examples

#: the characters that change how a query string parses: separators, escapes, ``+``
RAW = st.text(alphabet="format=&%+;._~-0123456789abcdefABCDEF xyz", max_size=40)
NAMES = st.sampled_from(["format", "fmt", "a", "x y", "a+b", "f%6f", "", "formats"])


def _escaped(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


#: the names themselves, spelled as a client may spell them, among other pairs
SPELLINGS = st.sampled_from([str, quote, quote_plus, _escaped])
PAIRS = st.tuples(NAMES, SPELLINGS, st.sampled_from(["", "=1", "=json", "=a+b"]))
BUILT = st.lists(PAIRS, max_size=4).map(
    lambda pairs: "&".join(spell(name) + value for name, spell, value in pairs)
)


def wsgi_request(raw: str):
    return RequestFactory().get("/api/items/", QUERY_STRING=raw)


@settings(max_examples=examples(300), deadline=None)
@given(raw=st.one_of(RAW, BUILT), name=NAMES)
@example(raw="x+y=1", name="x y")
@example(raw="a%2Bb=1", name="a+b")
@example(raw="%66ormat=api", name="format")
def test_a_parameter_is_what_get_holds_for_any_query_string_and_name(raw, name):
    expected = QueryDict(raw).get(name)
    assert querystring.param(wsgi_request(raw), name) == expected
    assert querystring.param(Request(wsgi_request(raw)), name) == expected
    parsed = wsgi_request(raw)
    parsed.GET  # noqa: B018
    assert querystring.param(parsed, name) == expected


@settings(max_examples=examples(300), deadline=None)
@given(first=RAW, second=RAW)
def test_requests_with_one_key_have_the_same_parameters(first, second):
    a, b = wsgi_request(first), wsgi_request(second)
    if querystring.key(a) == querystring.key(b):
        assert list(a.GET.lists()) == list(b.GET.lists())


def test_a_name_the_query_string_cannot_hold_is_answered_without_parsing():
    request = wsgi_request("status=active&sort=-price&limit=20")
    assert querystring.param(request, "format") is None
    querystring.key(request)
    assert "GET" not in request.__dict__  # nothing parsed


@pytest.mark.parametrize("raw", ["format=api", "%66ormat=api", "x=1&format=api"])
def test_a_name_the_query_string_may_hold_is_read_from_get(raw):
    assert querystring.param(wsgi_request(raw), "format") == "api"


def test_a_replaced_get_is_what_counts():
    """A middleware may replace ``request.GET``: the raw query string no longer says what
    the request's parameters are, so neither the answer nor the key comes from it."""
    request = wsgi_request("status=active")
    untouched = querystring.key(wsgi_request("status=active"))
    request.GET = QueryDict("status=archived&format=api")
    assert querystring.param(request, "format") == "api"
    assert querystring.key(request) != untouched
    assert querystring.key(request) == ("parsed", (("status", ("archived",)), ("format", ("api",))))


def test_another_encoding_is_another_key():
    latin = wsgi_request("q=%E9")
    latin.encoding = "iso-8859-1"
    assert querystring.key(latin) != querystring.key(wsgi_request("q=%E9"))
    assert latin.GET["q"] != wsgi_request("q=%E9").GET["q"]
