from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_arc", "0007_idempotency_headers"),
    ]

    operations = [
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="content_type",
            field=models.TextField(blank=True, default=""),
        ),
    ]
