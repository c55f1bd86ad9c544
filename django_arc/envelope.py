"""The success bodies, built in one place (arc 2.9's wire keys).

Every route, pagination class and preset answers through these functions, and the OpenAPI
schema (:mod:`django_arc.openapi`) describes these same shapes, so the wire format and its
documentation cannot drift apart one route at a time. Errors have their own single shape in
:mod:`django_arc.exceptions`.
"""

from __future__ import annotations

from typing import Any

CREATED = "Created successfully"
UPDATED = "Updated successfully"
DELETED = "Deleted successfully"
#: statuses whose answers carry no content, hence no envelope (RFC 9110 §15.3.5, §15.3.6,
#: §15.4.5: a server MUST NOT generate content in a 205 either)
NO_CONTENT = frozenset({204, 205, 304})


def success(data: Any, message: str | None = None) -> dict[str, Any]:
    """``{"success": true, "data": ..., "message"?: ...}``: one row, or a route's value."""
    body: dict[str, Any] = {"success": True, "data": data}
    if message:
        body["message"] = message
    return body


def deleted(id_value: Any, soft: bool) -> dict[str, Any]:
    """What ``DELETE`` answers (200, never 204): the id and whether the row was kept."""
    return success({"id": id_value, "soft": soft}, DELETED)


def page(docs: list[Any], page_number: int, limit: int, total: int) -> dict[str, Any]:
    """The offset-paginated list: flat, no ``data`` key."""
    pages = (total + limit - 1) // limit
    return {
        "success": True,
        "docs": docs,
        "page": page_number,
        "limit": limit,
        "total": total,
        "pages": pages,
        "hasNext": page_number < pages,
        "hasPrev": page_number > 1,
    }


def keyset(docs: list[Any], limit: int, next_cursor: str | None) -> dict[str, Any]:
    """The keyset-paginated list (``?after=``): the cursor of the next page, or ``null``."""
    return {
        "success": True,
        "docs": docs,
        "limit": limit,
        "hasNext": next_cursor is not None,
        "next": next_cursor,
    }
