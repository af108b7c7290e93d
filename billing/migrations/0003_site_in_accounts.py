"""Tariff assignments point at sites, which now belong to the accounts app (the same table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_site_from_stations'),
        ('billing', '0002_assignment_constraints'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='tariffassignment',
                name='site',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='tariff_assignments', to='accounts.site'),
            ),
        ]),
    ]
