"""``manage.py shop_purge_audit_log [--days D]``: the shop's audit retention, from cron
(django-arc never deletes an audit entry; see ``shop/retention.py``)."""

from django.core.management.base import BaseCommand, CommandError

from shop.retention import purge_audit_log


class Command(BaseCommand):
    help = "Delete audit log entries older than --days (default 365), 1000 per statement."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=365)

    def handle(self, *args, **options):
        if not 0 <= options["days"] <= 36500:
            raise CommandError(
                f"--days must be a number of days from 0 to 36500, got {options['days']}."
            )
        deleted = purge_audit_log(options["days"])
        if options["verbosity"] >= 1:  # --verbosity 0: nothing for cron to mail
            self.stdout.write(
                f"Deleted {deleted} audit log entry(ies) older than {options['days']} day(s)."
            )
