"""Security: the security events a station reports."""

from tests.support.examples import T0, Examples

EXAMPLES = Examples(
    received={
        ("1.6", "SecurityEventNotification"): {"type": "FirmwareUpdated", "timestamp": T0},
        ("2.0.1", "SecurityEventNotification"): {"type": "StartupOfTheDevice", "timestamp": T0},
    },
)
