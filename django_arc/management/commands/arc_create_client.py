"""``manage.py arc_create_client --name N --org ORG --scopes a,b``: create a service client.

The raw key is printed once and is not recoverable afterwards (only its SHA-256 is stored);
lose it and you create a new client or rotate the key in the admin-less way
(``client.set_new_key(); client.save()``).

``--org`` must name an existing organization of every model the resources' presets point
organization ids at (:mod:`django_arc.organizations`).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_arc.clients import ServiceClient
from django_arc.organizations import organization_exists, organization_models


def _parse_scopes(value: str) -> list[str]:
    scopes = [part.strip() for part in value.split(",")]
    return [scope for scope in scopes if scope]


class Command(BaseCommand):
    help = "Create a service client bound to an organization and print its API key (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Human-readable client name.")
        parser.add_argument(
            "--org", required=True, help="Primary key of the organization the client acts for."
        )
        parser.add_argument(
            "--scopes", default="", help="Comma-separated scopes, e.g. orders:read,sync."
        )
        parser.add_argument(
            "--inactive", action="store_true", help="Create the client deactivated."
        )
        parser.add_argument(
            "--key-only", action="store_true", help="Print only the key (for scripts)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        org = str(options["org"]).strip()
        if not name:
            raise CommandError("--name must not be empty.")
        if not org:
            raise CommandError("--org must not be empty.")
        if len(name) > 100 or len(org) > 128:
            raise CommandError("--name is limited to 100 characters, --org to 128.")
        targets = organization_models()
        for model in targets:
            if not organization_exists(model, org):
                raise CommandError(
                    f"Organization {org!r} does not exist ({model._meta.label}); create it first."
                )
        if not targets:
            self.stderr.write(
                f"Cannot check that organization {org!r} exists: no resource's preset "
                "points at an organization model."
            )
        scopes = _parse_scopes(options["scopes"])
        client, raw_key = ServiceClient.objects.create_with_key(
            name=name, organization_id=org, scopes=scopes, active=not options["inactive"]
        )
        if options["key_only"]:
            self.stdout.write(raw_key)
            return
        self.stdout.write(self.style.SUCCESS(f"Created service client '{client.name}'."))
        self.stdout.write(f"client_id:    {client.client_id}")
        self.stdout.write(f"organization: {client.organization_id}")
        self.stdout.write(f"scopes:       {', '.join(client.scopes) or '(none)'}")
        self.stdout.write(f"active:       {client.active}")
        self.stdout.write(f"key:          {raw_key}")
        self.stdout.write(
            self.style.WARNING("Store this key now: it is shown only once and cannot be recovered.")
        )
