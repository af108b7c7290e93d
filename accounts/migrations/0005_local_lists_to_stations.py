"""The local list models now belong to the stations app (stations 0005 renamed their tables);
the sites' table takes the name of its new app."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_site_from_stations'),
        ('stations', '0005_site_to_accounts_local_lists_from_accounts'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name='LocalListEntry'),
            migrations.DeleteModel(name='LocalListPush'),
            migrations.DeleteModel(name='LocalListState'),
            migrations.AlterField(
                model_name='site',
                name='organization',
                field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='sites', to='accounts.organization'),
            ),
        ]),
        migrations.AlterModelTable(name='site', table=None),
    ]
