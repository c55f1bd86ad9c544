"""Audit entries: ``Audited()`` records every write of a resource, :func:`custom` records a
domain event of your own (``audit.custom(request, "invoice.sent", object_id=...)``).

Both write an :class:`~django_arc.audit.models.AuditLog` row in the current transaction: if
the write (or your transaction) rolls back, so does its entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..events.event import changed_fields
from ..exceptions import get_request_id
from ..scope import get_scope

__all__ = [
    "custom",
    "entry",
    "record_many",
    "changed",
    "stored_object_id",
    "MAX_OBJECT_ID_BYTES",
]

#: The longest object id, in UTF-8 bytes, stored as given. The column is text, but the id
#: is also in the ``(resource, object_id, id)`` index, and PostgreSQL caps a btree entry at
#: 2,704 bytes (a 100-character resource may take 400 of them); SQLite has no cap. A longer
#: id is stored as :func:`stored_object_id` shortens it, on every database.
MAX_OBJECT_ID_BYTES = 2000

#: what follows the kept head of a shortened id: the SHA-256 of the whole id
_DIGEST_MARK = "~sha256:"
_HEAD_BYTES = MAX_OBJECT_ID_BYTES - len(_DIGEST_MARK) - 64
#: what no text column stores: a NUL (PostgreSQL), a lone surrogate (UTF-8)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def stored_object_id(value: Any) -> str:
    """The text ``object_id`` holds for ``value``, and the text to look it up by.

    An id of at most :data:`MAX_OBJECT_ID_BYTES` is itself. A longer one (a client-chosen
    text primary key, a signed URL given to :func:`custom`) is its first bytes, then
    ``~sha256:`` and the digest of the whole id: refusing it made the write it records a 500
    (an audited create with such a key), while this row still fits the index and is still
    found by exactly that id (the admin's search shortens a term the same way).

    A NUL or a lone surrogate (an id a project took from a query string, ``%00``) is
    U+FFFD: PostgreSQL's text refuses a NUL (a ``DataError`` aborting the caller's
    transaction) where SQLite stored it, and no driver encodes a lone surrogate."""
    text = _UNSTORABLE.sub("\N{REPLACEMENT CHARACTER}", "" if value is None else str(value))
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_OBJECT_ID_BYTES:
        return text
    head = encoded[:_HEAD_BYTES].decode("utf-8", "ignore")  # a cut character is dropped
    return f"{head}{_DIGEST_MARK}{hashlib.sha256(encoded).hexdigest()}"


def entry(
    request: Any,
    action: str,
    *,
    resource: str = "",
    object_id: Any = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    organization_id: Any = None,
) -> Any:
    """An unsaved ``AuditLog`` row with the request's actor, organization and request id.

    ``organization_id`` names the organization when the request names none: a platform
    admin's elevated write without ``X-Organization-Id`` reaches every tenant's rows, and
    the preset auditing the resource passes the written row's own tenant, so that the entry
    is in that organization's history. A request that names an organization records that one.

    ``ValueError`` when ``action`` or ``resource`` is longer than its column, on every
    database: SQLite would store it and PostgreSQL refuse it, aborting the caller's
    transaction (an audited resource's names are checked at start-up by the preset auditing
    it, arc.E011). ``object_id`` is stored as :func:`stored_object_id` gives it."""
    from .models import AuditLog  # a model: importable only once apps are ready

    for field, value in (("action", action), ("resource", resource)):
        limit = AuditLog._meta.get_field(field).max_length
        if len(value) > limit:
            raise ValueError(
                f"audit {field} {value[:40]!r}… is {len(value)} characters; at most {limit}"
            )
    scope = get_scope(request)
    return AuditLog(
        action=action,
        resource=resource,
        object_id=stored_object_id(object_id),
        organization_id=(
            scope.organization_id
            if scope.organization_id is not None or organization_id is None
            else str(organization_id)
        ),
        actor_kind=scope.kind,
        actor_user_id=None if scope.user_id is None else str(scope.user_id),
        actor_client_id=scope.client_id,
        request_id=get_request_id(request),
        before=before,
        after=after,
    )


def custom(
    request: Any,
    action: str,
    *,
    resource: str = "",
    object_id: Any = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    organization_id: Any = None,
) -> Any:
    """Record a domain entry (``"invoice.sent"``, ``"export.downloaded"``) for the caller of
    ``request``, in the current transaction (``organization_id`` as :func:`entry` takes
    it). Returns the saved row."""
    row = entry(
        request,
        action,
        resource=resource,
        object_id=object_id,
        before=before,
        after=after,
        organization_id=organization_id,
    )
    row.save(force_insert=True)
    return row


def record_many(
    request: Any,
    action: str,
    rows: Iterable[tuple[Any, dict[str, Any] | None, dict[str, Any] | None]],
    *,
    resource: str = "",
    organization_id: Any = None,
    organization_ids: Sequence[Any] | None = None,
) -> None:
    """Record one entry per ``(object_id, before, after)`` of ``rows`` — the rows of one
    bulk write — for the caller of ``request``, in the current transaction, with one
    INSERT. The entries are those :func:`entry` builds one by one (same actor,
    organization, request id), with one time for the batch; ``organization_id`` as
    :func:`entry` takes it, or ``organization_ids``, one per row, when the rows belong to
    several (an elevated bulk write across tenants): still one INSERT, where one per
    organization would be one per row when the tenants' rows alternate."""
    from .store import insert_many  # a model: importable only once apps are ready

    stored = [(stored_object_id(object_id), b, a) for object_id, b, a in rows]
    shared = entry(request, action, resource=resource, organization_id=organization_id)
    organizations = None
    if organization_ids is not None and get_scope(request).organization_id is None:
        if len(organization_ids) != len(stored):
            raise ValueError("organization_ids must name one organization per row")
        organizations = [None if org is None else str(org) for org in organization_ids]
    insert_many(shared, stored, organizations)


#: Only what changed between two renderings of a row (the whole row on create and delete),
#: compared as JSON values: the same comparison as an update event's ``changed``.
changed = changed_fields
