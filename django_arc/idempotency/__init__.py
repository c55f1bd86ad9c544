"""Idempotency keys (SPEC §10): ``POST/PATCH/PUT/DELETE`` carrying ``Idempotency-Key`` run
once per (namespace, caller, method, path, key); repeats get the stored response.

- :mod:`.keys` — validating the header, the scoped key, the request fingerprint;
- :mod:`.stores` — ``database`` (:class:`~.models.IdempotencyRecord`) and ``cache`` (Redis);
- :mod:`.execution` — one request's claim, on the view's ``initial()``/``finalize_response()``.

:func:`purge` deletes expired records (``manage.py arc_purge_idempotency``, the Celery task
``django_arc.purge_idempotency``).
"""

from __future__ import annotations

__all__ = ["purge"]


def purge(batch_size: int | None = None) -> int:
    """Delete expired ``IdempotencyRecord`` rows, ``batch_size`` (default
    :data:`~.stores.PURGE_BATCH_SIZE`) per statement; returns how many. (The ``cache`` store
    needs none: Redis expires its keys. Rows left from before a switch to it go too.)"""
    from .stores import PURGE_BATCH_SIZE, DatabaseStore  # a model: only once apps are ready

    return DatabaseStore().purge(PURGE_BATCH_SIZE if batch_size is None else batch_size)
