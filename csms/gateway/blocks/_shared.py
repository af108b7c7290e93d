"""What several blocks say alike: a station's notification kept as one of its events."""

from csms.gateway.frames import event_time
from csms.gateway.table import Context
from stations.services import device


def notification_record(ctx: Context, payload: dict, kind: str, field: str = "status") -> dict:
    """Record a station's notification (firmware, logs, security) as an event named by the
    payload's `field`, at its timestamp if it has one; its reply is empty."""
    timestamp = event_time(payload["timestamp"]) if "timestamp" in payload else None
    device.station_event_record(ctx.station, kind, payload[field], payload, timestamp)
    return {}
