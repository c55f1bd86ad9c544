import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('testapp', '0008_more_model_shapes'),
    ]

    operations = [
        migrations.CreateModel(
            name='DogTag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('label', models.CharField(max_length=50)),
                ('dog', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='testapp.dog')),
            ],
        ),
    ]
