from django.db import migrations, models


class Migration(migrations.Migration):
    """The key's uniqueness as a named constraint instead of ``unique=True``, which on
    PostgreSQL also built a ``varchar_pattern_ops`` (``_like``) index no query uses, one more
    index every claim's INSERT and every answer's UPDATE maintained."""

    dependencies = [
        ("django_arc", "0008_idempotency_content_type_text"),
    ]

    operations = [
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="key",
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name="idempotencyrecord",
            constraint=models.UniqueConstraint(fields=("key",), name="arc_idem_unique_key"),
        ),
    ]
