"""Availability: connector status, availability changes, heartbeats."""

from stations.services import commands
from tests.support.chargers import T0
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "StatusNotification"): {"connectorId": 1, "errorCode": "NoError",
                                        "status": "Charging", "timestamp": T0},
        ("2.0.1", "StatusNotification"): {"timestamp": T0, "connectorStatus": "Occupied",
                                          "evseId": 1, "connectorId": 1},
        ("1.6", "Heartbeat"): {},
        ("2.0.1", "Heartbeat"): {},
    },
    sent={
        ("1.6", commands.AvailabilityChange): (
            commands.AvailabilityChange(evse=1, operative=False), {"status": "Scheduled"}),
        ("2.0.1", commands.AvailabilityChange): (
            commands.AvailabilityChange(evse=0, operative=True), {"status": "Accepted"}),
    },
)
