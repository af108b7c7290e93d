"""Sites leave for the accounts app; the local authorization lists (an OCPP block of the charging
domain, not of accounts) arrive from it. Their tables keep their rows and get the names of their
new app."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_site_from_stations'),
        ('billing', '0003_site_in_accounts'),
        ('stations', '0004_high_volume_tables_without_constraints'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='station',
                name='site',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='stations', to='accounts.site'),
            ),
            migrations.DeleteModel(name='Site'),
            migrations.CreateModel(
                name='LocalListState',
                fields=[
                    ('station', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='local_list', serialize=False, to='stations.station')),
                    ('enabled', models.BooleanField(default=True)),
                    ('sync', models.CharField(choices=[('in_sync', 'in sync'), ('out_of_sync', 'out of sync'), ('sending', 'Sending'), ('too_large', 'too large for the charger'), ('failed', 'Failed'), ('not_supported', 'not supported by the charger')], default='out_of_sync', max_length=15)),
                    ('version', models.PositiveIntegerField(default=0)),
                    ('version_sent', models.PositiveIntegerField(default=0)),
                    ('version_reported', models.IntegerField(blank=True, null=True)),
                    ('version_reported_at', models.DateTimeField(blank=True, null=True)),
                    ('wanted', models.PositiveIntegerField(default=0)),
                    ('limits_read_at', models.DateTimeField(blank=True, null=True)),
                    ('note', models.CharField(blank=True, max_length=300)),
                    ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('attempts', models.PositiveSmallIntegerField(default=0)),
                ],
                options={'db_table': 'accounts_localliststate'},
            ),
            migrations.CreateModel(
                name='LocalListEntry',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('value', models.CharField(max_length=36)),
                    ('token_type', models.CharField(blank=True, max_length=20)),
                    ('status', models.CharField(max_length=10)),
                    ('expires_at', models.DateTimeField(blank=True, null=True)),
                    ('group', models.CharField(blank=True, max_length=36)),
                    ('station', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='local_list_entries', to='stations.station')),
                ],
                options={'ordering': ['value'], 'db_table': 'accounts_locallistentry',
                         'constraints': [models.UniqueConstraint(fields=('station', 'value'), name='local_list_entry_unique')]},
            ),
            migrations.CreateModel(
                name='LocalListPush',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('version', models.PositiveIntegerField()),
                    ('full', models.BooleanField()),
                    ('entries', models.JSONField(default=dict)),
                    ('last', models.BooleanField(default=True)),
                    ('call', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='stations.call')),
                    ('station', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='stations.station')),
                ],
                options={'db_table': 'accounts_locallistpush'},
            ),
        ]),
        migrations.AlterModelTable(name='localliststate', table=None),
        migrations.AlterModelTable(name='locallistentry', table=None),
        migrations.AlterModelTable(name='locallistpush', table=None),
    ]
