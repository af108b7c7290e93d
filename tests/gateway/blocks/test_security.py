"""Security: the security events a station reports."""

from tests.support.chargers import T0
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "SecurityEventNotification"): {"type": "FirmwareUpdated", "timestamp": T0},
        ("2.0.1", "SecurityEventNotification"): {"type": "StartupOfTheDevice", "timestamp": T0},
    },
)
