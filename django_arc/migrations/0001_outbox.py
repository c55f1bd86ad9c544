import django.core.serializers.json
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="OutboxEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("event_id", models.CharField(max_length=64, unique=True)),
                ("type", models.CharField(max_length=200)),
                (
                    "payload",
                    models.JSONField(
                        default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder
                    ),
                ),
                (
                    "meta",
                    models.JSONField(
                        default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "pending"),
                            ("delivered", "delivered"),
                            ("dead", "dead"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("lease_owner", models.CharField(blank=True, max_length=200, null=True)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("visible_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("dedupe_key", models.CharField(blank=True, max_length=512, null=True)),
                ("partition_key", models.CharField(blank=True, max_length=255, null=True)),
                ("last_error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "outbox event",
                "verbose_name_plural": "outbox events",
                "ordering": ["id"],
                "indexes": [
                    models.Index(
                        fields=["status", "visible_at"], name="arc_outbox_status_visible"
                    ),
                    models.Index(fields=["delivered_at"], name="arc_outbox_delivered_at"),
                    models.Index(
                        condition=models.Q(("status", "pending")),
                        fields=["visible_at", "id"],
                        name="arc_outbox_pending_visible",
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("dedupe_key__isnull", False)),
                        fields=("dedupe_key",),
                        name="arc_outbox_unique_dedupe_key",
                    )
                ],
            },
        ),
    ]
