"""What an ``Idempotency-Key`` is executed once per, and what counts as "the same request".

The scoped key (SPEC §10) hashes namespace, caller identity, method, path and the client's
key: two callers (users, organizations, service clients) or two deployments sharing a store
can never replay each other's responses, whatever keys their clients pick. The fingerprint
hashes method, full path and the canonical JSON body: the same key sent with another body is
a client bug (422 ``IDEMPOTENCY_KEY_REUSED``), not a new request.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import re
from json.encoder import encode_basestring
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.http import QueryDict

from ..exceptions import ArcError
from ..parsers import JSONNumber

HEADER = "Idempotency-Key"
_META = "HTTP_IDEMPOTENCY_KEY"
#: 1–255 printable ASCII characters (what an HTTP header carries reliably)
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
#: ``json.dumps`` builds an encoder on every call that passes options: this one is built once
#: (same options, same output — stored fingerprints must keep matching)
_encode_body = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode


def read_key(request: Any) -> str | None:
    """The request's ``Idempotency-Key``; ``None`` when absent; 400 ``VALIDATION_ERROR``
    naming the header when empty, longer than 255 characters or not printable ASCII."""
    raw = request.META.get(_META)
    if raw is None:
        return None
    if not _VALID_KEY.fullmatch(raw):
        raise ArcError(
            "VALIDATION_ERROR",
            f"Invalid {HEADER} header",
            400,
            {HEADER: ["Must be 1 to 255 printable ASCII characters."]},
        )
    return raw


def caller_identity(scope: Any) -> str:
    """Who is asking, as the key scope sees it: the service client, or the user within the
    organization it acts for; anonymous callers share one identity. Everything else that
    decides what a request may touch is part of it too: the context keys (tenant dimensions
    such as a branch, SPEC §5: one client or user in two branches is two callers, each of
    whom would get 404 for the other's rows) and elevation (a platform-scoped request may
    read and write what the same user's plain request may not). Either is appended only
    when present, so the identities of requests without them are what they always were."""
    org = "" if scope.organization_id is None else _part(scope.organization_id)
    if scope.kind == "service":
        identity = f"client:{_part(scope.client_id)}:org:{org}"
    elif scope.user_id is not None:
        identity = f"user:{_part(scope.user_id)}:org:{org}"
    else:
        identity = "anonymous"
    if scope.kind == "elevated":
        identity += ":elevated"
    if scope.context:
        pairs = sorted(scope.context.items())
        identity += ":context:" + _json_strings(tuple(str(p) for pair in pairs for p in pair))
    return identity


def _part(value: Any) -> str:
    """One id of the identity: as it is when it holds none of ``:``, ``"`` and ``\\`` (an
    integer, a UUID: the identities of keys already stored), else as a JSON string. A text
    id can then never pass for a separator: user ``5:org:7`` in organization ``x`` and user
    ``5`` in organization ``7:org:x`` are two callers, not one."""
    text = str(value)
    if ":" in text or '"' in text or "\\" in text:
        return encode_basestring(text)
    return text


def scoped_key(namespace: str, identity: str, method: str, path: str, key: str) -> str:
    """The store's key and the prefix of the request's event keys: a SHA-256 (hex) of
    everything a key is unique within, so it has a fixed length whatever the client sent."""
    material = _json_strings((namespace, identity, method, path, key))
    return hashlib.sha256(_utf8(material)).hexdigest()


def fingerprint(method: str, full_path: str, data: Any) -> str:
    """SHA-256 (hex) of method, path with query string and the canonical JSON of the body
    (keys sorted, no whitespace), so a re-serialised retry of the same body matches."""
    material = _json_strings((method, full_path)) + "\n" + _encode_body(_canonical(data))
    return hashlib.sha256(_utf8(material)).hexdigest()


def _utf8(material: str) -> bytes:
    """UTF-8, with a lone surrogate (which JSON may carry: ``"\\ud800"``) as its own three
    bytes rather than an error: the body is the serializer's to refuse, with a 400."""
    return material.encode("utf-8", "surrogatepass")


def _json_strings(parts: tuple[str, ...]) -> str:
    """``json.dumps(list(parts), ensure_ascii=False)`` for strings, character for character
    (the material of keys already stored), without building an encoder for five strings."""
    return "[" + ", ".join(map(encode_basestring, parts)) + "]"


def _canonical(data: Any) -> Any:
    """A parsed body as plain JSON values: form and multipart bodies as ``{key: [values]}``,
    uploaded files by name, size and content hash, a body no parser took (bytes) by size and
    content hash."""
    if isinstance(data, bytes):
        return {"body": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    if isinstance(data, QueryDict):
        return {key: [_canonical(v) for v in data.getlist(key)] for key in data}
    if isinstance(data, UploadedFile):
        digest = hashlib.sha256()
        for chunk in data.chunks():
            digest.update(chunk)
        data.seek(0)
        return {"file": data.name, "size": data.size, "sha256": digest.hexdigest()}
    if isinstance(data, dict):
        return {str(k): _canonical(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_canonical(v) for v in data]
    if isinstance(data, JSONNumber) and not data.exact():
        # a number no float holds (``12345678901234567.891``, ``1e-400``): a decimal field
        # reads its text, so two such numbers sharing a float are two bodies; a number a
        # float holds keeps the float's spelling (the fingerprint earlier releases stored)
        return {"$number": _number_text(data.text)}
    return data


def _number_text(text: str) -> str:
    """One spelling of the number ``text`` spells: ``12345678901234567.891``, ``…567.8910``
    and ``1.2345678901234567891e16`` are one decimal (one body, replayed), where their texts
    made three fingerprints (422 ``IDEMPOTENCY_KEY_REUSED`` for the same request). Its
    digits without trailing zeros and its exponent, read with no context (no rounding, no
    exponent too large)."""
    sign, digits, exponent = decimal.Decimal(text).as_tuple()
    while len(digits) > 1 and digits[-1] == 0:
        digits = digits[:-1]
        exponent += 1
    return f"{'-' if sign else ''}{''.join(map(str, digits))}e{exponent}"
