"""One request run under an ``Idempotency-Key``, on the view's DRF seams (SPEC §10).

The view calls :meth:`IdempotentExecution.begin` at the end of ``initial()`` — after
authentication, scope, permissions and throttles, so a repeat is judged like any request
and the caller identity the key is scoped by is known — and :meth:`finish` from
``finalize_response()``. Every unsafe route (CRUD, bulk, actions, non-raw routes) passes
there, so none needs code of its own.

``begin`` claims the scoped key, or answers without running the route: the stored response
of a finished key (``X-Idempotency-Replayed: true``), 409 ``IDEMPOTENCY_CONFLICT`` while it
is in flight, 422 ``IDEMPOTENCY_KEY_REUSED`` for another fingerprint. With the ``database``
store the route then runs inside a transaction that :meth:`finish` commits together with the
stored response, the route's writes with it when their rows are on the records' database
(always, without a router; rows a router sends elsewhere are written as without a key and
commit first, arc.W007); an exception rolls it back (:meth:`abort`) before the error
response is stored. With the ``cache`` store the route runs inside a transaction too (Redis
cannot join it), on the databases its writes need, committed before the answer is stored;
inside ``ATOMIC_REQUESTS`` it is Django's, and the answer waits for its commit. A 5xx is
never stored: the key is released, the route's writes rolled back, and a retry runs anew.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import Any

from asgiref.sync import async_to_sync
from django.db import OperationalError, connections, transaction
from django.http import HttpResponse
from django.utils import translation
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.utils import encoders

from .. import redis_alias
from ..exceptions import ArcError, ShortCircuit
from ..headers import own_headers
from ..mixins import CreateMixin, UpdateMixin
from ..routers import canonical_path
from ..settings import arc_settings
from ..transactions import atomic_on
from ..uploads import undo_files_with
from .keys import caller_identity, fingerprint, read_key, scoped_key
from .stores import FINISHED, IN_FLIGHT, REUSED, Claim, Request, StoreUnavailable, get_store

logger = logging.getLogger("django_arc.idempotency")

REPLAYED_HEADER = "X-Idempotency-Replayed"


def applies(view: Any) -> bool:
    """Whether this request may carry an ``Idempotency-Key``: an unsafe method on a routed
    action of a resource with idempotency on (``idempotent``, else the setting); raw routes
    keep their raw body and are left alone."""
    if view.request.method in SAFE_METHODS or view.action in (None, "metadata"):
        return False
    spec = view.route_spec
    if spec is not None and spec.raw:
        return False
    return enabled_for(view.resource)


def enabled_for(resource: Any) -> bool:
    """Whether ``resource`` takes keys on its unsafe routes: its ``idempotent``, else the
    setting. The OpenAPI schema asks too, to document the header where it is read."""
    enabled = resource.idempotent
    if enabled is None:
        enabled = arc_settings.IDEMPOTENCY.get("ENABLED", False)
    return bool(enabled)


def readable_now(view: Any, claim: Claim) -> tuple[bytes, str]:
    """The stored body of ``claim`` without what the caller of ``view`` may no longer read.

    A key is scoped by the caller, not by its roles, so a retry sent after a role was taken
    away (or a deploy hid or masked a field) is still a replay: the write is not made again,
    and the caller learns its outcome — status, id, headers. But the row in the answer was
    rendered under the old rights, and a caller must never be handed a field it may not
    read now: the answer's row (``data``, or a page's ``docs``; one row or a list of rows,
    told from a route's own value by its keys, which are all field names of the resource's
    model or serializer, of a field rule, or of the serializer the view builds for this
    request: a ViewSet subclass's own, a field a project's ``get_fields()`` adds) goes
    through the caller's read plan again, as a new answer's would. Nothing changed for it
    — the usual case — keeps the stored bytes; otherwise the shaped answer is rendered by
    the view's JSON renderer, indented as the stored body was. An answer a project renderer
    wrote under other key names (camelCase) or in another charset is read from the document
    kept beside it (:attr:`Claim.data`, :func:`_kept_document`), not from its bytes, and so
    is one a non-JSON renderer wrote (XML, YAML). A reshaped answer is rendered again by
    the view's renderer of the stored media type (:func:`_replay_renderer`), else by its
    JSON renderer, under that renderer's ``Content-Type`` (docs/idempotency.md, "When the
    caller's access changes before the retry"). Returns the body and its ``Content-Type``."""
    body, kept = claim.body, (claim.body, claim.content_type)
    wrote = ""
    if claim.data is not None:
        doc = dict(claim.data) if isinstance(claim.data, dict) else claim.data
        if isinstance(doc, dict):
            wrote = str(doc.pop(_RENDERER, ""))
    elif not claim.content_type.split(";")[0].endswith("json"):
        return kept
    else:
        try:
            doc = _loads(body, claim.content_type)
        except (ValueError, RecursionError, LookupError):  # not JSON: nothing to shape
            return kept
    # one row or a route's value under ``data``; a page of rows (a write route answering
    # ``list_response``, a search sent as a POST) under ``docs``
    envelope_key = (
        next((k for k in ("data", "docs") if k in doc), None)
        if (isinstance(doc, dict) and doc.get("success") is True)
        else None
    )
    if envelope_key is None:
        return kept
    data, rendered_now = doc[envelope_key], frozenset(view.resource.output_fields)
    # a row's names: the serializer's, the model's, and a field rule's (a computed field
    # made ``hidden()`` by a deploy is rendered no more, yet it is the stored row's)
    rule_names = frozenset(view.field_access.rules.rules)
    known = rendered_now | _model_names(view.resource.model) | rule_names

    @functools.cache
    def rendered_for_this_request() -> frozenset[str]:
        # what the view's serializer renders now, for this request: a ViewSet subclass's
        # own (a ``SerializerMethodField`` of its own), a field a project's
        # ``get_fields()`` adds per request; built once, for a create's or an update's row
        # (``written_row``) or for a name the rest does not know
        return frozenset(serializer_fields_now())

    @functools.cache
    def serializer_fields_now() -> dict[str, Any]:
        # An update's answer was rendered by a serializer given the row: one whose
        # ``get_fields()`` adds a field for a row it is given (``self.instance``) lost it
        # from the replay, to the same caller too. A replay reads no row, so the serializer
        # is given a stand-in, the model's unsaved instance; one that cannot take it (its
        # ``get_fields()`` reading what a stand-in lacks) is built without, as a create's is.
        standing_in = view.action in ("update", "partial_update")
        for instance in (_stand_in(view), None) if standing_in else (None,):
            try:
                # not ``get_serializer()``: a browsable request's form narrows its fields
                cls = view.get_serializer_class()
                serializer = cls(instance, context=view.get_serializer_context())
                return dict(serializer.fields)
            except Exception:  # noqa: BLE001, S112 - a view with no serializer to build
                continue
        return {}

    def renamed_keys(row: dict[str, Any]) -> bool:
        # a row under other key names (a camelCase renderer's ``createdAt``): a name nothing
        # knows that is, but for case, ``_`` and ``-``, a field the retry's serializer
        # renders to this caller and the row lacks. Shaped by the serializer's names, it
        # lost every renamed field (the answer of a caller whose access did not change
        # too); it is replayed as stored, as docs/idempotency.md says. A field
        # ``get_fields()`` gave the first caller only (``margin``, even beside one it gives
        # the retry instead) is no renaming: shaped
        now = serializer_fields_now()
        unknown = row.keys() - known - now.keys()
        if not unknown:
            return False
        drop = plan.drop
        missing = {
            _spelled(name)
            for name, field in now.items()
            if name not in row and name not in drop and not field.write_only
        }
        return any(_spelled(name) in missing for name in unknown)

    # the answer of arc's own create()/update() is the row the view's serializer rendered:
    # a row whatever its names. A name nothing knows for the retry (a field the project's
    # ``get_fields()`` gave the first caller only: staff, a role) made it no row, and it was
    # replayed as stored, the fields the read plan takes now (``cost``) included
    written_row = view.route_spec is None and view.arc_action is None and _answers_its_row(view)

    def is_row(value: Any) -> bool:
        if not isinstance(value, dict) or not value:
            return False
        if written_row and value is data:
            return not renamed_keys(value)
        return value.keys() <= known or value.keys() <= known | rendered_for_this_request()

    # A create's or an update's row, rendered by the resource's own serializer: a field it
    # no longer renders at all (made ``hidden()``, or taken out of ``fields`` by a deploy)
    # is no field of a new answer either. An action's or a route's answer may be a value of
    # its own whose keys merely are model field names (``{"in_stock": false}``), and a
    # ViewSet subclass's serializer may render more than the resource's: only the read
    # plan shapes them, as it shapes what they render (a name outside the serializer's is
    # no field a rule takes away).
    own_row = (
        view.route_spec is None
        and view.arc_action is None
        and view.get_serializer_class() is view.resource.serializer
    )

    def shape(row: dict[str, Any]) -> dict[str, Any]:
        shaped = plan.shape(row)
        now = rendered_for_this_request() if written_row else frozenset()
        if now:
            # what a new answer's serializer renders for this caller, as the read plan
            # leaves it: a ViewSet subclass's own fields too
            return {k: v for k, v in shaped.items() if k in now}
        if not own_row or shaped.keys() <= rendered_now:
            return shaped
        now = rendered_now | rendered_for_this_request()
        return {k: v for k, v in shaped.items() if k in now}

    plan = view.field_access.read_plan()
    if is_row(data):
        shaped: Any = shape(data)
    elif isinstance(data, list) and data and all(is_row(row) for row in data):
        shaped = [shape(row) for row in data]
    else:
        return kept
    if shaped == data:
        return kept
    doc[envelope_key] = shaped
    renderer, content_type = _replay_renderer(view, claim.content_type, wrote)
    try:
        return _rendered(view, renderer, doc, claim.status, body), content_type
    except Exception:  # noqa: BLE001 - the project's renderer; the outcome must still go out
        json_renderer, json_type = _replay_renderer(view, "")
        if json_renderer is renderer:
            raise
        # a renderer of fixed columns (a CSV's ``cost``) may not render a shaped row:
        # the shaped document goes out in the view's JSON, never the stored bytes
        logger.warning(
            "%s could not render a reshaped replay; answered with %s",
            type(renderer).__name__,
            type(json_renderer).__name__,
            exc_info=True,
        )
        return _rendered(view, json_renderer, doc, claim.status, body), json_type


def _rendered(view: Any, renderer: Any, doc: Any, status: int, body: bytes) -> bytes:
    """``doc`` rendered by ``renderer`` in the context DRF renders with, as the stored answer
    was (a project renderer may read ``renderer_context["response"]``: its status), indented
    as the stored ``body`` was."""
    response = Response(doc, status=status)
    response.accepted_renderer, response.accepted_media_type = renderer, renderer.media_type
    context = {**view.get_renderer_context(), "response": response}
    indent = _indent(body)
    if indent:
        context["indent"] = indent  # DRF's JSONRenderer reads it (an ``indent`` Accept param)
    rendered = renderer.render(doc, renderer.media_type, context)
    if isinstance(rendered, str):
        rendered = rendered.encode(renderer.charset or "utf-8")
    return bytes(rendered or b"")


def _replay_renderer(view: Any, content_type: str, wrote: str = "") -> tuple[Any, str]:
    """The renderer a reshaped replay is rendered with, and the ``Content-Type`` it goes
    with: the view's renderer of the stored answer's media type (a project's
    ``application/vnd.shop+json`` or XML renderer wrote it: DRF's ``JSONRenderer`` writes
    what that renderer leaves out) — the one that ``wrote`` it (its class, named in the
    kept document) when the view has it, else the first — the stored ``Content-Type``
    kept; else, when the view has none of that type any more (a deploy took it out), its
    JSON renderer under the ``Content-Type`` that renderer answers with — never the stored
    bytes."""
    media_type = content_type.split(";")[0].strip().lower()
    of_its_type = [
        renderer
        for renderer in view.get_renderers()
        if not isinstance(renderer, BrowsableAPIRenderer)
        and renderer.media_type.split(";")[0].strip().lower() == media_type
    ]
    if of_its_type:
        named = (r for r in of_its_type if wrote and _identity(r) == wrote)
        return next(named, of_its_type[0]), content_type
    renderer = _json_renderer(view)
    charset = renderer.charset
    return renderer, f"{renderer.media_type}; charset={charset}" if charset else renderer.media_type


def _spelled(name: str) -> str:
    """``name`` as its spellings share it (``created_at``, ``createdAt``, ``created-at``)."""
    return name.replace("_", "").replace("-", "").lower()


def _stand_in(view: Any) -> Any:
    """An unsaved row of ``view``'s model standing in for the one an update wrote, for a
    serializer built on a replay (which reads no row); ``None`` for a model that cannot be
    built so. A field with a default is given ``None``: ``Model()`` runs every callable
    ``default``, project code (one drawing a number from a sequence), which a replay, which
    runs nothing of the write, ran once more each time."""
    model = view.resource.model
    unset = {f.attname: None for f in model._meta.concrete_fields if f.has_default()}
    try:
        return model(**unset)
    except Exception:  # noqa: BLE001 - a model of the project's own __init__
        return None


def _answers_its_row(view: Any) -> bool:
    """Whether ``view`` answers this request with the row its serializer wrote: a create or
    an update by arc's own ``create()``/``update()`` (a ViewSet subclass overriding one
    may answer a value of its own)."""
    ours = {
        "create": {"create": CreateMixin.create},
        "partial_update": {"partial_update": UpdateMixin.partial_update},
        "update": {"update": UpdateMixin.update, "partial_update": UpdateMixin.partial_update},
    }.get(view.action)
    cls = type(view)
    return (
        ours is not None
        and getattr(cls, "render_saved", None) is CreateMixin.render_saved
        and all(getattr(cls, name, None) is method for name, method in ours.items())
    )


def _loads(body: bytes, content_type: str) -> Any:
    """``body`` parsed as JSON: as UTF-8 (what DRF's ``JSONRenderer`` writes, whatever
    ``charset`` a subclass declares), else in the charset its ``Content-Type`` names (a
    project renderer encoding in its own ``charset``)."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                return json.loads(body.decode(value.strip().strip('"')))
        raise


def _indent(body: bytes) -> int:
    """The indent of a stored JSON object or list (``Accept: application/json; indent=4``),
    0 when it is on one line: a reshaped replay keeps the stored answer's formatting."""
    if body[1:2] not in (b"\n", b"\r"):
        return 0
    line = body[1:].lstrip(b"\r\n")
    return min(len(line) - len(line.lstrip(b" ")), 8)


def _kept_document(renderer: Any, response: Any, content_type: str, body: bytes) -> Any:
    """The document to keep beside a stored answer (:attr:`Claim.data`) when ``body`` does
    not read back as it: a project renderer (one with a ``render()`` of its own) wrote it
    under other key names (camelCase), added to it or left a field out, encoded it in a
    charset ``json.loads`` does not read, or wrote no JSON at all (XML, YAML: whatever
    such a body holds, its document is kept). ``None`` otherwise — DRF's ``JSONRenderer``
    and its subclasses that keep its ``render()`` cost nothing here — and for an answer
    with no envelope of rows (``success`` and ``data`` or ``docs``), which a replay never
    shapes. A replay shapes this document, not the bytes, and renders it again with the
    view's renderer of the stored media type when the caller may read less now
    (:func:`readable_now`)."""
    if renderer is None or type(renderer).render is JSONRenderer.render:
        return None
    data = getattr(response, "data", None)
    if not (isinstance(data, dict) and data.get("success") is True):
        return None
    if "data" not in data and "docs" not in data:
        return None
    document = _document(data)
    if document is None:
        return None
    if content_type.split(";")[0].endswith("json"):
        # a non-JSON body is never read back at replay (a JSON text/plain too)
        try:
            if _loads(body, content_type) == document:
                return None  # another renderer, the same document (orjson)
        except (ValueError, RecursionError, LookupError):
            pass
    # which renderer wrote it: of two the view has for one media type, a reshaped replay is
    # rendered by this one, not the first (read and dropped by :func:`readable_now`)
    document[_RENDERER] = _identity(renderer)
    return document


#: the key of a kept document naming the renderer that wrote the answer (not a field name:
#: arc's envelope keys are ``success``, ``data``, ``docs`` and the page's)
_RENDERER = "arc:renderer"


def _identity(renderer: Any) -> str:
    return f"{type(renderer).__module__}.{type(renderer).__qualname__}"


class _LenientEncoder(encoders.JSONEncoder):
    """DRF's encoder, writing a value it cannot encode (a project's own object its renderer
    writes) as its text. A value with no text (its ``__str__`` raises, whatever the error:
    a model's ``__str__`` following a relation gone since, a lazy string failing) is a
    ``TypeError``, as a ``__str__`` raising ``ValueError`` or ``TypeError`` already was:
    :func:`_document` keeps the rows' names then. Any other error escaped, a 500 for an
    answer the project's renderer had written. DRF's own ``default``, asked first, lists a
    value with ``tolist()`` or ``__iter__``, which may raise anything as well (a lazy
    collection reading a relation gone since): the value is then written as its text, as
    one DRF cannot encode is."""

    def default(self, obj: Any) -> Any:
        try:
            return super().default(obj)
        except Exception:  # noqa: BLE001, S110 - a project's tolist()/__iter__ may raise anything
            pass
        try:
            return str(obj)
        except Exception as exc:  # noqa: BLE001 - a project's __str__ may raise anything
            raise TypeError(f"a {type(obj).__name__} with no text") from exc


def _document(data: Any) -> Any:
    """``data`` as JSON reads it back: DRF's encoding, a value it cannot encode as its text,
    a non-finite number as null, a key JSON cannot name left out. Failing that (a value
    holding itself, nested beyond the recursion limit), each row's names with null values:
    a replay shaping it still leaves out what the caller may not read, and one shaping
    nothing replays the stored bytes. ``None`` when neither reads (no rows to shape)."""
    try:
        text = json.dumps(data, cls=_LenientEncoder, skipkeys=True, ensure_ascii=False)
        return json.loads(text, parse_constant=lambda _: None)
    except (ValueError, TypeError, RecursionError):
        pass
    logger.warning(
        "An idempotent answer's document could not be read as JSON: kept as its rows' names"
    )

    def names(row: Any) -> Any:
        return {str(name): None for name in row} if isinstance(row, dict) else None

    document = {"success": True}
    for key in ("data", "docs"):
        if key in data:
            value = data[key]
            document[key] = [names(r) for r in value] if isinstance(value, list) else names(value)
    return document


def _model_names(model: Any) -> frozenset[str]:
    """The names a row of ``model`` may be rendered under: its fields and their columns."""
    names: set[str] = set()
    for field in model._meta.get_fields():
        names.add(field.name)
        attname = getattr(field, "attname", None)
        if attname:
            names.add(attname)
    return frozenset(names)


def _body(request: Any) -> Any:
    """The body the fingerprint hashes: parsed, or its bytes when no parser takes its content
    type — no error for a route that reads ``request.body`` itself (a CSV import) and never
    asks for ``request.data``, so not one for a keyed request to it either."""
    try:
        return request.data
    except UnsupportedMediaType:
        return request.body


#: headers describing an answer's bytes, not its meaning: not replayed with a reshaped body
_OF_THE_BYTES = frozenset(
    ("content-length", "etag", "content-md5", "digest", "content-digest", "repr-digest")
)


def replay_response(claim: Claim, view: Any = None) -> HttpResponse:
    """The stored answer, byte for byte and with the headers of its own, marked as a replay;
    without a ``Content-Type`` when the answer had none (DRF sends none with an empty body,
    a 204). With ``view``, the rows in it are shaped by what its caller may read now
    (:func:`readable_now`); a shaped body goes without the stored headers describing the
    stored bytes (``Content-Length``, ``ETag``, digests)."""
    body, content_type = (
        (claim.body, claim.content_type) if view is None else readable_now(view, claim)
    )
    response = HttpResponse(body, status=claim.status, content_type=content_type)
    if not content_type:
        del response["Content-Type"]
    reshaped = body is not claim.body
    for name, value in claim.headers:
        if reshaped and name.lower() in _OF_THE_BYTES:
            # it described the stored bytes, which are not sent: a length longer than
            # the body stalls the client's read, an ETag or digest names other bytes
            continue
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


class IdempotentExecution:
    """The claim of one request; see the module docstring for its life."""

    def __init__(self, store: Any, record: Request, token: str, view: Any) -> None:
        self.store = store
        self.view = view
        self.record = record
        self.token = token
        self._atomic: Any = None
        #: the databases of the request's own transaction, when it runs in one (the
        #: records' for the ``database`` store, the write's for the ``cache`` store)
        self.databases: tuple[str, ...] = ()
        #: how many of the request's writes are open (see :meth:`write`)
        self._writes = 0
        #: whether every write takes a savepoint, the first too (see :meth:`write`): a
        #: write has completed in the request's transaction, or the view's own code runs
        #: around its writes (``ResourceViewSet.wraps_writes``)
        self._savepoint_each = False
        #: ``(alias, savepoint id, on_commit callbacks then)`` of the ``ATOMIC_REQUESTS``
        #: transactions the route runs in, for a non-transactional store (see
        #: :meth:`_roll_back_request`)
        self._savepoints: list[tuple[str, str, int]] = []
        #: a non-transactional store's answer, kept for :meth:`_store_answer` to store when
        #: the request's ``ATOMIC_REQUESTS`` transactions commit; ``None`` until
        #: :meth:`finish` has one to keep
        self._answer: tuple[Any, ...] | None = None
        #: the scope judging the files the request's writes store (:meth:`_judging_files`)
        self._files: Any = None

    @classmethod
    def begin(cls, view: Any) -> IdempotentExecution | None:
        """Claim the request's key, or raise the answer it gets instead. ``None`` when the
        request carries no key or idempotency does not apply."""
        if not applies(view):
            return None
        request = view.request
        key = read_key(request)
        if key is None:
            return None
        settings = arc_settings.IDEMPOTENCY
        # a no-slash twin route (``/products``) is the canonical one's operation: one key
        path = canonical_path(request._request)
        scoped = scoped_key(
            str(settings.get("NAMESPACE") or ""),
            caller_identity(view.scope),
            request.method,
            path,
            key,
        )
        full_path = canonical_path(request._request, full=True)
        record = Request(
            key=scoped,
            fingerprint=fingerprint(request.method, full_path, _body(request)),
            method=request.method,
            path=path,
            lock_seconds=float(settings.get("LOCK_SECONDS", 30)),
            ttl_seconds=float(settings.get("TTL_SECONDS", 86400)),
        )
        try:
            store = get_store(settings)
            claim = store.claim(record)
        except StoreUnavailable as exc:
            # once per interval, not once per request: an outage must not flood the log
            # (Django's own django.request logs every 503 already)
            if redis_alias.warning_due("idempotency store"):
                logger.warning(
                    "Idempotency store unavailable: %s; keyed requests are answered 503 "
                    "(next warning in %d s at most)",
                    exc,
                    redis_alias.WARNING_INTERVAL_SECONDS,
                )
            raise ArcError(
                "IDEMPOTENCY_UNAVAILABLE",
                "Idempotency keys cannot be checked right now; retry later",
                503,
                headers={"Retry-After": "1"},
            ) from None
        if claim.outcome == FINISHED:
            raise ShortCircuit(replay_response(claim, view))
        if claim.outcome == IN_FLIGHT:
            raise ArcError(
                "IDEMPOTENCY_CONFLICT",
                "A request with this Idempotency-Key is still in progress",
                409,
                headers={"Retry-After": "1"},
            )
        if claim.outcome == REUSED:
            raise ArcError(
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was already used for a different request",
                422,
            )
        execution = cls(store, record, claim.token, view)
        # What events.emit() turns into "<scoped key>:<event type>:<resource id>".
        request._request.arc_idempotency_key = scoped
        if store.transactional:
            execution._open((store.using,))
            return execution._judging_files()
        aliases = _request_transactions()
        if not aliases:
            # Without a transaction of the request's, the writes would commit one by one
            # before the answer is known: a 5xx after them (a project's create() answering
            # one after saving, or raising) gives the key up, and the retry made them again.
            execution._open(view.write_databases())
            return execution._judging_files()
        execution._savepoints = [
            (
                alias,
                transaction.savepoint(using=alias),
                len(transaction.get_connection(alias).run_on_commit),
            )
            for alias in aliases
        ]
        # Asked for now, before the route's writes ask for theirs: Django stops running a
        # commit's callbacks at the first that raises, and a project's (a mail sent on
        # commit) failing must not keep the answer of writes that committed from being
        # stored, or the retry makes them a second time.
        transaction.on_commit(execution._store_answer, using=aliases[-1], robust=True)
        return execution._judging_files()

    def _judging_files(self) -> IdempotentExecution:
        """The files the request's writes store are judged when its answer is (:meth:`finish`,
        :meth:`give_up`), not when each write ends (:mod:`django_arc.uploads`): its writes
        commit or roll back with the request's answer, and a 5xx (a route's, a project's
        ``create()`` answering one after saving) rolls back writes that had ended waiting to
        commit, whose files were judged kept and stayed in storage, named by no row."""
        self._files = undo_files_with(nullcontext())
        self._files.__enter__()
        return self

    def _judge_files(self) -> None:
        files, self._files = self._files, None
        if files is not None:
            files.__exit__(None, None, None)

    def _open(self, databases: tuple[str, ...]) -> None:
        """Run the route inside a transaction of the request's on ``databases``, which its
        writes join (:meth:`write`). Failing to open it (the database gone since the claim)
        gives the key up, or it would stay locked with nothing running."""
        atomic = atomic_on(databases, writing=True)
        try:
            atomic.__enter__()
        except BaseException as exc:
            self._release()
            if isinstance(exc, OperationalError) and _sqlite_locked(databases, exc):
                # SQLite: other requests' writes held the lock past its wait; the key is
                # free again and nothing ran, a 503 to retry like the claim's (stores.py)
                raise ArcError(
                    "IDEMPOTENCY_UNAVAILABLE",
                    "The database is busy with other writes; retry later",
                    503,
                    headers={"Retry-After": "1"},
                ) from None
            raise
        self._atomic, self.databases = atomic, databases
        wraps_writes = getattr(self.view, "wraps_writes", None)
        self._savepoint_each = wraps_writes is None or wraps_writes()

    @property
    def in_transaction(self) -> bool:
        """Whether the route runs inside this request's own transaction: always on the
        ``database`` store, and on the ``cache`` store outside ``ATOMIC_REQUESTS``."""
        return self._atomic is not None

    def write(self) -> _Write:
        """The transaction of one write inside this request's own (``write_transaction``).
        A write nested in another (a route or action calling ``perform_create``), following
        one that completed (a ``create()`` saving twice), or in a view whose own code runs
        around its writes (a ``create()`` of the project's, ``ResourceViewSet.wraps_writes``)
        gets a savepoint, as without a key: code catching its error (a ``create()`` answering
        with the row that already exists, an import reporting the rows that failed) goes on
        with the rest of its work, which commits, and the failed write and its event are
        undone alone. The framework's own single write adds no savepoint (no SQL): nothing
        of the view's runs around it to catch its error, which marks the request's
        transaction for rollback, so nothing of the request commits."""
        return _Write(self)

    def abort(self, exc: BaseException) -> None:
        """The route raised: roll its writes back (the error response is stored after)."""
        self._close(exc)

    def give_up(self, exc: BaseException) -> None:
        """The request's answer is not kept (a 5xx, or no answer at all): roll its writes
        back and give its key up, so the retry runs anew."""
        self._close(exc)
        if not self.store.transactional:
            self._roll_back_request()
        self._release()
        self._judge_files()

    def finish(self, response: Any) -> ArcError | None:
        """Store ``response`` for repeats (below 500), committing the route's transaction
        with it; release the key on a 5xx. Returns an error to answer instead when the
        response could not be kept (it failed to render, the claim was lost to a takeover,
        the commit failed): the route's writes are then rolled back and the key released,
        whatever went wrong, so neither the transaction nor the key outlives the request."""
        try:
            return self._finish(response)
        finally:
            self._judge_files()

    def _finish(self, response: Any) -> ArcError | None:
        store, record, token = self.store, self.record, self.token
        if response.status_code >= 500:
            self.give_up(_Rollback())
            return None
        try:
            # before the page is rendered: the browsable renderers change what they answer
            answer = _json_answer(self.view, response)
            body = _content(response)  # rendering sets the Content-Type
            if answer is None:
                content_type = response.get("Content-Type", "")
                document = _kept_document(
                    getattr(response, "accepted_renderer", None), response, content_type, body
                )
                answer = (
                    response.status_code,
                    content_type,
                    body,
                    _stored_headers(self.view, response),
                    document,
                )
            if self._atomic is not None and any(
                transaction.get_connection(alias).needs_rollback for alias in self.databases
            ):
                # a write failed and its error was caught with no savepoint to undo it
                # alone (the view's own atomic(savepoint=False)): nothing of the route
                # commits, as when it raises, and the answer is stored after, as a raised
                # error's is
                self._close(_Rollback())
            if not store.transactional:
                # The writes are not the store's to commit: they commit first, and the answer
                # is stored once they have (inside ATOMIC_REQUESTS transactions, when those
                # commit). An answer stored before a commit that fails would outlive writes
                # never made; one that fails to be stored after leaves them standing.
                if self._savepoints:
                    self._answer = answer
                else:
                    self._close(None)
                    store.complete(record, token, *answer)
                return None
            kept = store.complete(record, token, *answer)
            if self._atomic is None:
                return None  # the route raised: its writes are rolled back, its error stored
            if not kept:
                self._close(_Rollback())
                return ArcError(
                    "IDEMPOTENCY_CONFLICT",
                    "This request outlived its Idempotency-Key lock and was taken over; "
                    "nothing was written",
                    409,
                    headers={"Retry-After": "1"},
                )
            self._close(None)
        except Exception as exc:  # noqa: BLE001 - the key and transaction must not stay held
            logger.exception("Finishing an idempotent request failed")
            self.give_up(exc)
            return ArcError("INTERNAL_ERROR", "Internal server error", 500)
        return None

    def _store_answer(self) -> None:
        """The request's ``ATOMIC_REQUESTS`` transactions committed its writes: store the
        answer :meth:`finish` kept (none when the route failed with a 5xx, whose key was
        given up). Were the commit to fail, this would not run, and the claim would expire
        after ``LOCK_SECONDS`` for the retry to run: an answer stored before the commit
        would outlive writes that were never made."""
        answer, self._answer = self._answer, None
        if answer is not None:
            self.store.complete(self.record, self.token, *answer)

    def _roll_back_request(self) -> None:
        """A non-transactional store gives the key up (a 5xx) and the retry runs anew: the
        route's writes still uncommitted — inside ``ATOMIC_REQUESTS`` transactions, which
        commit only after the view has answered — must not commit, or the retry makes them
        a second time. They are rolled back to where the key was claimed, so what came
        before (an elevated request's audit event) stays. (Without ``ATOMIC_REQUESTS`` the
        writes committed with their own transactions.)"""
        savepoints, self._savepoints = self._savepoints, []
        for alias, sid, callbacks in savepoints:
            connection = transaction.get_connection(alias)
            if not connection.needs_rollback:
                try:
                    transaction.savepoint_rollback(sid, using=alias)
                except Exception:  # noqa: BLE001 - then the whole transaction goes
                    logger.exception("Rolling back an idempotent request failed")
                else:
                    # What the rolled-back writes asked to run on commit (an event to
                    # publish with the outbox off) goes with them: a savepoint of our own
                    # is not one Django's on_commit bookkeeping knows of.
                    del connection.run_on_commit[callbacks:]
                    continue
            transaction.set_rollback(True, using=alias)

    def _release(self) -> None:
        """Give the key up (a 5xx). A store failing to (the database gone mid-request) is
        only logged: the request still gets its answer, and the claim frees itself after
        ``LOCK_SECONDS``."""
        try:
            self.store.release(self.record, self.token)
        except Exception:  # noqa: BLE001 - the answer must still go out
            logger.exception("Releasing an idempotency key failed; it frees itself after its lock")

    def _close(self, exc: BaseException | None) -> None:
        """Leave the route's transaction: commit when ``exc`` is None, else roll back."""
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return
        if exc is None:
            atomic.__exit__(None, None, None)
            return
        try:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
        except Exception:  # noqa: BLE001 - the rollback's own failure is only logged
            logger.exception("Rolling back an idempotent request failed")


class _Write:
    """:meth:`IdempotentExecution.write`. The framework's own single write enters no
    ``Atomic`` (no savepoint on every keyed write) and only marks the request's transaction
    for rollback on an error, as ``atomic(savepoint=False)`` would and as Django's own
    ``mark_for_rollback_on_error`` does; any other enters a savepoint."""

    __slots__ = ("execution", "savepoint")

    def __init__(self, execution: IdempotentExecution) -> None:
        self.execution = execution
        self.savepoint: Any = None

    def __enter__(self) -> None:
        execution = self.execution
        if execution._writes or execution._savepoint_each:
            self.savepoint = atomic_on(execution.databases)
            self.savepoint.__enter__()
        execution._writes += 1

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        execution = self.execution
        execution._writes -= 1
        if self.savepoint is not None:
            self.savepoint.__exit__(exc_type, exc, traceback)
        elif exc_type is not None:
            for alias in execution.databases:
                transaction.get_connection(alias).needs_rollback = True
        if exc_type is None and not execution._writes:
            execution._savepoint_each = True


def _stored_headers(view: Any, response: Any) -> list[tuple[str, str]]:
    """The answer's own headers (:func:`~django_arc.headers.own_headers`) and, under
    Django's ``LocaleMiddleware`` (it marks the request with ``LANGUAGE_CODE``), the
    ``Content-Language`` of the language the answer was rendered in. The middleware adds
    that header after the view, from the language active then: a replay's body is the first
    attempt's, in its language, while the retry's middleware named the retry's (a French
    400's messages served as ``Content-Language: de``). Stored, the replay carries it and
    the middleware's ``setdefault`` leaves it."""
    headers = own_headers(view, response)
    request = getattr(view, "request", None)
    language = translation.get_language()
    if (
        language
        and getattr(request, "LANGUAGE_CODE", None) is not None
        and not response.has_header("Content-Language")
    ):
        headers.append(("Content-Language", language))
    return headers


def _json_answer(view: Any, response: Any) -> tuple[Any, ...] | None:
    """The answer to store for one the browsable API renders (``BrowsableAPIRenderer``, DRF's
    ``AdminRenderer``): the same data as the view's JSON renderer renders it for a JSON
    request, with the status and headers a JSON request gets. The page holds the caller's
    name and a CSRF token in its forms, and a retry asking for JSON must get what a
    JSON-first request would have got, so a page is never stored: the first caller still
    gets its page, every retry the JSON answer. ``None`` for any other answer (stored as
    rendered)."""
    if not isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
        return None
    renderer = _json_renderer(view)
    context = {**(getattr(response, "renderer_context", None) or {}), "response": response}
    body = renderer.render(response.data, renderer.media_type, context)
    if isinstance(body, str):
        body = body.encode(renderer.charset or "utf-8")
    content_type = response.content_type or (
        f"{renderer.media_type}; charset={renderer.charset}"
        if renderer.charset
        else renderer.media_type
    )
    body = bytes(body or b"")
    return (
        response.status_code,
        content_type if body else "",
        body,
        _stored_headers(view, response),
        _kept_document(renderer, response, content_type, body),
    )


def _json_renderer(view: Any) -> Any:
    """The renderer a JSON request of ``view`` is answered with: its first renderer whose
    format is ``json`` (a project's camelCase one too), else DRF's ``JSONRenderer``."""
    for renderer in view.get_renderers():
        if renderer.format == "json" and not isinstance(renderer, BrowsableAPIRenderer):
            return renderer
    return JSONRenderer()


def _sqlite_locked(aliases: tuple[str, ...], exc: OperationalError) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" on one of ``aliases``."""
    return "locked" in str(exc) and any(connections[a].vendor == "sqlite" for a in aliases)


def _request_transactions() -> list[str]:
    """The aliases whose ``ATOMIC_REQUESTS`` transaction the view runs in, in ``DATABASES``
    order (no SQL)."""
    return [
        alias
        for alias, settings_dict in connections.settings.items()
        if settings_dict.get("ATOMIC_REQUESTS") and connections[alias].in_atomic_block
    ]


def _content(response: Any) -> bytes:
    """The body the client gets, as stored for repeats: rendered (DRF's responses render
    late), or, for a streaming response (an export from a route), read whole and handed back
    to the response, so the route's answer is kept and replayed like any other. An
    asynchronous iterator (what Django streams best under ASGI) is read through
    ``async_to_sync`` — on the server's event loop under ASGI — and handed back as one: joined
    as if it were a list, it failed, and the keyed request answered 500."""
    if getattr(response, "streaming", False):
        if getattr(response, "is_async", False):
            body = async_to_sync(_read_async)(response.streaming_content)
            response.streaming_content = _replay_async(body)
        else:
            body = b"".join(response.streaming_content)
            response.streaming_content = [body]
        return body
    if hasattr(response, "render"):
        response.render()
    return bytes(response.content)


async def _read_async(parts: AsyncIterator[bytes]) -> bytes:
    return b"".join([part async for part in parts])


async def _replay_async(body: bytes) -> AsyncIterator[bytes]:
    yield body


class _Rollback(Exception):  # noqa: N818 - a signal to Atomic, never raised
    """Passed to ``Atomic.__exit__`` to roll back a transaction without an exception."""
