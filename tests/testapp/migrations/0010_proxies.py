from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('testapp', '0009_dogtag'),
    ]

    operations = [
        migrations.CreateModel(
            name='AnimalProxy',
            fields=[],
            options={
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('testapp.animal',),
        ),
        migrations.CreateModel(
            name='DogProxy',
            fields=[],
            options={
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('testapp.dog',),
        ),
    ]
