"""The query cache (SPEC §11): list and get answers of resources with ``cache = {...}``,
in Redis through a django-redis alias, shared by callers who would get the same bytes.

- :mod:`.policy` — which resources are cached, for how long, with which tags;
- :mod:`.keys` — what an answer depends on (the filtered queryset's SQL, field access, page);
- :mod:`.store` — entries and version tokens in Redis, and outages;
- :mod:`.read` — one request's HIT / STALE / MISS, on the view's DRF seams;
- :mod:`.invalidation` — version bumps on commit: the request seam, model signals and
  :func:`invalidate` for writes that send no signal.
"""

from __future__ import annotations

from .invalidation import invalidate

__all__ = ["invalidate"]
