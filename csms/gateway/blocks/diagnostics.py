"""Diagnostics (1.6 FirmwareManagement's diagnostics and the Security Whitepaper's logs; 2.0.1
N: logs, monitoring, events, customer information): what a station reports of its logs and of
the events its monitors raise. Asking for logs and setting monitors is not built yet."""

from ocpp.v16.enums import Action as V16
from ocpp.v21.enums import Action as V21
from ocpp.v201.enums import Action as V201

from csms.gateway.blocks._shared import notification_record
from csms.gateway.frames import event_time
from csms.gateway.table import TABLE, V201_AND_V21, Context, Direction, Version
from stations.models import StationEvent
from stations.services import device

LOGS_AND_MONITORING = "pulling logs and variable monitoring"


@TABLE.handles(Version.V16, V16.diagnostics_status_notification)
def diagnostics_status_16(ctx: Context, payload: dict) -> dict:
    return notification_record(ctx, payload, StationEvent.Kind.DIAGNOSTICS)


@TABLE.handles((Version.V16, Version.V201), V16.log_status_notification)
def log_status(ctx: Context, payload: dict) -> dict:
    return notification_record(ctx, payload, StationEvent.Kind.DIAGNOSTICS)


@TABLE.handles(Version.V201, V201.notify_event)
def notify_event_201(ctx: Context, payload: dict) -> dict:
    for event in payload["eventData"]:
        name = f"{event['component']['name']}.{event['variable']['name']}: {event['trigger']}"
        device.station_event_record(ctx.station, StationEvent.Kind.MONITORING, name, event,
                                    event_time(event["timestamp"]))
    return {}


TABLE.unsupported(Version.V16, Direction.TO_CHARGER, V16.get_diagnostics, V16.get_log,
                  block=__name__, note=LOGS_AND_MONITORING)
TABLE.unsupported(V201_AND_V21, Direction.TO_CHARGER, V201.get_log,
                  V201.set_variable_monitoring, V201.clear_variable_monitoring,
                  V201.set_monitoring_base, V201.set_monitoring_level, V201.get_monitoring_report,
                  block=__name__, note=LOGS_AND_MONITORING)
TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER, V201.notify_monitoring_report,
                  block=__name__, note=LOGS_AND_MONITORING)
TABLE.unsupported(V201_AND_V21, Direction.TO_CHARGER, V201.customer_information,
                  block=__name__, note="customer information (N09, N10)")
TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER, V201.notify_customer_information,
                  block=__name__, note="customer information (N09, N10)")
TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
# NotifyPeriodicEventStream is a SEND (message type 6, never answered): the library's enum
# of actions has no member for it.
TABLE.unsupported(Version.V21, Direction.FROM_CHARGER, V21.open_periodic_event_stream,
                  V21.close_periodic_event_stream, "NotifyPeriodicEventStream",
                  block=__name__, note="OCPP 2.1 periodic event streams")
TABLE.unsupported(Version.V21, Direction.TO_CHARGER, V21.adjust_periodic_event_stream,
                  V21.get_periodic_event_stream, block=__name__,
                  note="OCPP 2.1 periodic event streams")
