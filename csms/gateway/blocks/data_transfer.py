"""Data transfer (1.6 Core; 2.0.1 P): vendor data, alike in both versions. A charger's
DataTransfer is recorded and answered by the handler registered for its vendorId, UnknownVendorId
without one."""

from collections.abc import Callable
from typing import Any

from ocpp.v16.enums import Action as V16
from ocpp.v201.enums import DataTransferStatusEnumType as DataTransferStatus

from csms.gateway.table import TABLE, Context, Direction, Version
from stations.models import Station, StationEvent
from stations.services import device

# vendorId → function(station, messageId, data) → (status, data or None). Empty by default.
VENDOR_HANDLERS: dict[str, Callable[[Station, str, Any], tuple[str, Any]]] = {}


@TABLE.handles((Version.V16, Version.V201), V16.data_transfer)
def data_transfer(ctx: Context, payload: dict) -> dict:
    vendor = payload["vendorId"]
    device.station_event_record(ctx.station, StationEvent.Kind.DATA_TRANSFER, vendor,
                                {"messageId": payload.get("messageId", "")})
    handler = VENDOR_HANDLERS.get(vendor)
    if handler is None:
        return {"status": DataTransferStatus.unknown_vendor_id}
    status, data = handler(ctx.station, payload.get("messageId", ""), payload.get("data"))
    return {"status": status, **({"data": data} if data is not None else {})}


TABLE.unsupported((Version.V16, Version.V201), Direction.TO_CHARGER, V16.data_transfer,
                  block=__name__, note="no vendor data of ours to send (a raw call can)")
TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
