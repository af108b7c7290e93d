"""What a station tells about itself besides charging: notifications (firmware, diagnostics,
security, monitoring events, vendor data) and its device model or configuration."""

from datetime import datetime

from django.utils import timezone

from stations import events
from stations.models import DeviceVariable, Station, StationEvent
from stations.records import VariableReport


def station_event_record(station: Station, kind: str, name: str, detail: dict,
                         timestamp: datetime | None = None) -> None:
    StationEvent.objects.create(
        station=station, kind=kind, name=name[:100], detail=detail,
        timestamp=timestamp or timezone.now(),
    )
    if kind == StationEvent.Kind.FIRMWARE:
        Station.objects.filter(pk=station.pk).update(firmware_status=name[:50])
    if kind != StationEvent.Kind.MONITORING or name != "Boot":
        events.publish(f"station.{kind}", station.pk, station.site_id, name=name)



def device_variables_record(station: Station, reports: list[VariableReport]) -> None:
    """A device-model or configuration report: the latest value of each variable is kept."""
    for report in reports:
        DeviceVariable.objects.update_or_create(
            station=station, component=report.component,
            component_instance=report.component_instance, evse_number=report.evse,
            connector_number=report.connector, variable=report.variable,
            variable_instance=report.variable_instance, attribute_type=report.attribute_type,
            defaults={"value": report.value, "mutability": report.mutability},
        )


