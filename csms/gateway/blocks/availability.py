"""Availability (1.6 Core: StatusNotification, ChangeAvailability, Heartbeat; 2.0.1 G): what
state each connector is in, taking connectors in and out of service, and signs of life."""

from ocpp.v16.enums import Action as V16
from ocpp.v16.enums import AvailabilityType
from ocpp.v16.enums import ChargePointStatus as Status16
from ocpp.v201.enums import Action as V201
from ocpp.v201.enums import ConnectorStatusEnumType as ConnectorStatus
from ocpp.v201.enums import OperationalStatusEnumType as OperationalStatus

from csms.gateway.frames import event_time, utc_now
from csms.gateway.table import TABLE, Context, Version
from stations.models import Connector
from stations.services import batch, commands

# 1.6 reports what the car is doing; the domain keeps "occupied" and the charger's word as detail.
_OCCUPIED_16 = {Status16.preparing, Status16.charging, Status16.suspended_ev,
                Status16.suspended_evse, Status16.finishing}
# 1.6 statuses that say no transaction runs on the connector: free, waiting for one to start,
# or after one stopped.
_NO_SESSION_16 = {Status16.available, Status16.preparing, Status16.finishing}


@TABLE.handles(Version.V16, V16.status_notification)
def status_notification_16(ctx: Context, payload: dict) -> dict:
    reported = payload["status"]
    status = Connector.Status.OCCUPIED if reported in _OCCUPIED_16 else reported
    connector = payload["connectorId"]
    batch.status_record(
        ctx.station, evse=connector, connector=1 if connector else None, status=status,
        detail=reported if reported != status else "", error_code=payload["errorCode"],
        info=payload.get("info", ""),
        timestamp=event_time(payload["timestamp"]) if "timestamp" in payload else None,
        no_session=reported in _NO_SESSION_16, batch=ctx.batch,
    )
    return {}


@TABLE.handles(Version.V201, V201.status_notification)
def status_notification_201(ctx: Context, payload: dict) -> dict:
    batch.status_record(
        ctx.station, evse=payload["evseId"], connector=payload["connectorId"],
        status=payload["connectorStatus"], timestamp=event_time(payload["timestamp"]),
        no_session=payload["connectorStatus"] == ConnectorStatus.available, batch=ctx.batch,
    )
    return {}


@TABLE.handles((Version.V16, Version.V201), V16.heartbeat, before_acceptance=True)
def heartbeat(ctx: Context, payload: dict) -> dict:
    batch.station_seen(ctx.station, ctx.batch)
    return {"currentTime": utc_now()}


@TABLE.builds(Version.V16, V16.change_availability, commands.AvailabilityChange)
def availability_change_16(command: commands.AvailabilityChange) -> dict:
    return {"connectorId": command.evse,
            "type": AvailabilityType.operative if command.operative
            else AvailabilityType.inoperative}


@TABLE.builds(Version.V201, V201.change_availability, commands.AvailabilityChange)
def availability_change_201(command: commands.AvailabilityChange) -> dict:
    payload: dict = {"operationalStatus": OperationalStatus.operative if command.operative
                     else OperationalStatus.inoperative}
    if command.evse:
        payload["evse"] = {"id": command.evse}
    return payload


TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
