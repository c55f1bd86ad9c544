import django_arc.clients
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("django_arc", "0001_outbox"),
    ]

    operations = [
        migrations.CreateModel(
            name="ServiceClient",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("client_id", models.CharField(default=django_arc.clients.generate_client_id,
                                               editable=False, max_length=40, unique=True)),
                ("organization_id", models.CharField(
                    db_index=True,
                    help_text="Primary key (as text) of the organization this client acts for.",
                    max_length=128)),
                ("scopes", models.JSONField(
                    blank=True, default=list,
                    help_text='List of scope names, e.g. ["orders:read", "sync"].')),
                ("key_prefix", models.CharField(db_index=True, editable=False, max_length=12)),
                ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("active", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "verbose_name": "service client",
                "db_table": "django_arc_service_client",
                "ordering": ["name", "id"],
            },
        ),
    ]
