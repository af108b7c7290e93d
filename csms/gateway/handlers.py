"""What both version adapters share: the handler registry and the context a handler runs in."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csms.gateway.frames import parse_timestamp
from stations import services
from stations.bulk import Batch
from stations.models import Station, StationEvent

# Vendor DataTransfer handlers: vendorId → function(station, message_id, data) → (status, data).
# Empty by default, so a charger's DataTransfer is answered UnknownVendorId (both versions).
DATA_TRANSFER_HANDLERS: dict[str, Callable[[Station, str, Any], tuple[str, Any]]] = {}


@dataclass(slots=True)
class Context:
    """What a handler knows about the connection its message came on, and the batch of many
    chargers' messages its records join (csms/gateway/writer.py)."""

    station: Station
    version: str
    batch: Batch


Handler = Callable[[Context, dict], dict]


class Registry(dict[str, Handler]):
    """action → handler; a decorator fills it."""

    def on(self, action: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self[action] = handler
            return handler

        return register


def data_transfer(ctx: Context, payload: dict) -> dict:
    """Vendor data, alike in both versions: recorded, and answered by a registered handler."""
    vendor = payload["vendorId"]
    services.station_event_record(ctx.station, StationEvent.Kind.DATA_TRANSFER, vendor,
                                  {"messageId": payload.get("messageId", "")})
    handler = DATA_TRANSFER_HANDLERS.get(vendor)
    if handler is None:
        return {"status": "UnknownVendorId"}
    status, data = handler(ctx.station, payload.get("messageId", ""), payload.get("data"))
    return {"status": status, **({"data": data} if data is not None else {})}


def notification(kind: str, field: str = "status") -> Handler:
    """A handler that records a station's notification (firmware, logs, security) as an event."""

    def handler(ctx: Context, payload: dict) -> dict:
        timestamp = parse_timestamp(payload["timestamp"]) if "timestamp" in payload else None
        services.station_event_record(ctx.station, kind, payload[field], payload, timestamp)
        return {}

    return handler
