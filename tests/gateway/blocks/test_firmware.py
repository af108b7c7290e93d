"""Firmware: what a station reports of its updates."""

from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "FirmwareStatusNotification"): {"status": "Downloading"},
        ("1.6", "SignedFirmwareStatusNotification"): {"status": "SignatureVerified",
                                                      "requestId": 1},
        ("2.0.1", "FirmwareStatusNotification"): {"status": "Installed", "requestId": 1},
    },
)
