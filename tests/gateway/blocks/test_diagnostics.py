"""Diagnostics: what a station reports of its logs, and its monitors' events."""

from tests.support.chargers import T0
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "DiagnosticsStatusNotification"): {"status": "Uploaded"},
        ("1.6", "LogStatusNotification"): {"status": "Uploading", "requestId": 1},
        ("2.0.1", "LogStatusNotification"): {"status": "Uploaded", "requestId": 1},
        ("2.0.1", "NotifyEvent"): {"generatedAt": T0, "seqNo": 0, "eventData": [
            {"eventId": 1, "timestamp": T0, "trigger": "Delta", "actualValue": "Faulted",
             "eventNotificationType": "HardWiredNotification",
             "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
             "variable": {"name": "AvailabilityState"}}]},
    },
)
