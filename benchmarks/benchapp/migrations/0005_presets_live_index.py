from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("benchapp", "0004_presets"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="presetitem", name="bench_pitem_org_status_price"),
        migrations.AddIndex(
            model_name="presetitem",
            index=models.Index(
                condition=models.Q(deleted_at__isnull=True),
                fields=["organization", "status", "price"],
                name="bench_pitem_org_status_price",
            ),
        ),
    ]
