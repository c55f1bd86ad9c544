"""What ``arc_purge_outbox`` and ``arc_purge_idempotency`` share: the ``--batch-size`` option
and its refusal, and the one line each prints. (A module whose name starts with ``_`` is no
command of its own.)"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class PurgeCommand(BaseCommand):
    """A purge from cron: ``--batch-size`` (rows per ``DELETE``, each committed on its own;
    below 1 refused with status 1, argparse's own error for no integer), then
    :meth:`purge`, whose line is printed (not at ``--verbosity 0``).

    No ``ABCMeta`` (``purge`` an ``abstractmethod``): a project extends these commands as
    it overrides any app's, and a mixin of its own with a metaclass could then no longer be
    listed beside them (a metaclass conflict at import)."""

    #: the ``--batch-size`` help: what one statement deletes, and why batches
    batch_help = ""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=None, help=self.batch_help)

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be a positive integer, got {batch_size}.")
        line = self.purge(batch_size, options)
        # ``--verbosity 0`` (cron: it mails whatever a line prints) prints nothing when the
        # purge succeeded; a refusal is a CommandError on stderr whatever the verbosity
        if int(options.get("verbosity", 1)) >= 1:
            self.stdout.write(line)

    def purge(self, batch_size: int | None, options: dict[str, Any]) -> str:
        """Delete, ``batch_size`` rows per statement (``None``: the default); the line to
        print. A refusal is a :class:`CommandError`."""
        raise NotImplementedError
