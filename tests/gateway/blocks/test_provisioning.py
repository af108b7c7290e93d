"""Provisioning: boot, resets, the configuration and device model a station reports."""

from hypothesis import given
from hypothesis import strategies as st

from csms.gateway.blocks.provisioning import _authorization_key_password, password_change_16
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


CHARGER_PASSWORD_CHARACTERS = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-_=:+|@.")


@given(st.text(CHARGER_PASSWORD_CHARACTERS, min_size=16, max_size=20))
def test_an_authorization_key_says_the_password_it_was_built_from(password):
    payload = password_change_16(commands.PasswordChange(password))
    assert payload["key"] == "AuthorizationKey"
    assert _authorization_key_password(payload["value"]) == password


@given(st.text(max_size=60))
def test_an_authorization_key_that_is_not_16_to_20_bytes_in_hex_says_none(value):
    password = _authorization_key_password(value)
    assert password is None or (16 <= len(bytes.fromhex(value)) <= 20
                                and password.encode().hex() == value.lower())
