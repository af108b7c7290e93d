from django.db import migrations, models


def keep_only_chosen_lists(apps, schema_editor):
    """Lists were turned on by merely asking a charger for its version: keep on only those a
    person chose (turned on or pushed by hand, in the audit log); the rest stop being sent."""
    state = apps.get_model("stations", "LocalListState")
    audit_entry = apps.get_model("accounts", "AuditEntry")
    chosen = set(audit_entry.objects.filter(action="local_list.push", actor_name__gt="")
                 .values_list("target", flat=True))
    for station_id in state.objects.filter(enabled=True).values_list("station_id", flat=True):
        if f"station:{station_id}" not in chosen:
            state.objects.filter(station_id=station_id).update(enabled=False)


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0008_cards_site_access_roaming"),
        ("stations", "0010_values_call_parts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="localliststate",
            name="enabled",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(keep_only_chosen_lists, migrations.RunPython.noop),
    ]
