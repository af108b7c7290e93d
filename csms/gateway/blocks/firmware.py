"""Firmware management (1.6 FirmwareManagement and the Security Whitepaper's signed firmware;
2.0.1 L): what a station reports of its firmware updates. Sending updates is not built yet."""

from ocpp.v16.enums import Action as V16
from ocpp.v201.enums import Action as V201

from csms.gateway.blocks._shared import notification_record
from csms.gateway.table import TABLE, V201_AND_V21, Context, Direction, Version
from stations.models import StationEvent

FIRMWARE_CAMPAIGNS = "firmware updates and campaigns"



@TABLE.handles((Version.V16, Version.V201), V16.firmware_status_notification)
def firmware_status(ctx: Context, payload: dict) -> dict:
    return notification_record(ctx, payload, StationEvent.Kind.FIRMWARE)


@TABLE.handles(Version.V16, V16.signed_firmware_status_notification)
def signed_firmware_status_16(ctx: Context, payload: dict) -> dict:
    return notification_record(ctx, payload, StationEvent.Kind.FIRMWARE)


TABLE.unsupported(Version.V16, Direction.TO_CHARGER, V16.update_firmware,
                  V16.signed_update_firmware, block=__name__, note=FIRMWARE_CAMPAIGNS)
TABLE.unsupported(V201_AND_V21, Direction.TO_CHARGER, V201.update_firmware,
                  V201.publish_firmware, V201.unpublish_firmware, block=__name__,
                  note=FIRMWARE_CAMPAIGNS)
TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER,
                  V201.publish_firmware_status_notification, block=__name__,
                  note="publishing firmware to local controllers")
TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
