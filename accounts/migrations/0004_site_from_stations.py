"""Sites move from the stations app to accounts, beside the organizations that own them and the
cards that may be limited to them: accounts imports nothing above it. The table is the same
(renamed in 0005); only Django's idea of which app holds the model changes here."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_station_registration_action'),
        ('stations', '0004_high_volume_tables_without_constraints'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='Site',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=200)),
                    ('address', models.CharField(blank=True, max_length=300)),
                    ('time_zone', models.CharField(default='UTC', max_length=64)),
                    ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.organization')),
                ],
                options={'ordering': ['name'], 'db_table': 'stations_site'},
            ),
            migrations.AlterField(
                model_name='idtoken',
                name='allowed_sites',
                field=models.ManyToManyField(blank=True, related_name='+', to='accounts.site'),
            ),
        ]),
    ]
