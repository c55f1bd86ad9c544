"""Transactions on more than one database: a write whose rows and outbox a router sends to
two databases, and a keyed request that holds its writes until its answer is known, open
one on each (the rows' commit first, then the event's: not one commit, but nothing of a
write that raises commits)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.db import transaction


def atomic_on(aliases: tuple[str, ...]) -> Any:
    """``transaction.atomic`` on each of ``aliases``, entered in order (the last innermost,
    the first to commit)."""
    if len(aliases) == 1:
        return transaction.atomic(using=aliases[0])
    return _atomics(aliases)


@contextmanager
def _atomics(aliases: tuple[str, ...]) -> Iterator[None]:
    with ExitStack() as stack:
        for alias in aliases:
            stack.enter_context(transaction.atomic(using=alias))
        yield
