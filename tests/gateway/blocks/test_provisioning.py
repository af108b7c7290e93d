"""Provisioning: boot, resets, the configuration and device model a station reports."""

from stations.services import commands
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "BootNotification"): {"chargePointVendor": "V", "chargePointModel": "M"},
        ("2.0.1", "BootNotification"): {"reason": "PowerUp",
                                        "chargingStation": {"vendorName": "V", "model": "M"}},
        ("2.0.1", "NotifyReport"): {
            "requestId": 1, "generatedAt": "2026-11-24T10:00:00Z", "seqNo": 0,
            "reportData": [{"component": {"name": "LocalAuthListCtrlr"},
                            "variable": {"name": "Entries"},
                            "variableAttribute": [{"value": "0", "mutability": "ReadOnly"}],
                            "variableCharacteristics": {"dataType": "integer",
                                                        "supportsMonitoring": False,
                                                        "maxLimit": 500}}]},
    },
    sent={
        ("1.6", commands.Reset): (commands.Reset(hard=True), {"status": "Accepted"}),
        ("2.0.1", commands.Reset): (commands.Reset(hard=False), {"status": "Scheduled"}),
        ("1.6", commands.PasswordChange): (commands.PasswordChange("new-password-0123456"),
                                           {"status": "Accepted"}),
        ("2.0.1", commands.PasswordChange): (
            commands.PasswordChange("new-password-0123456"),
            {"setVariableResult": [{"attributeStatus": "Accepted",
                                    "component": {"name": "SecurityCtrlr"},
                                    "variable": {"name": "BasicAuthPassword"}}]}),
    },
)
