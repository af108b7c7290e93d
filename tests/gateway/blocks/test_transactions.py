"""Transactions: 1.6 start and stop, 2.0.1 transaction events."""

from tests.support.chargers import T0
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "StartTransaction"): {"connectorId": 1, "idTag": "CARD-1", "meterStart": 1000,
                                      "timestamp": T0},
        ("1.6", "StopTransaction"): {"transactionId": 7, "meterStop": 2000, "timestamp": T0,
                                     "reason": "Local"},
        ("2.0.1", "TransactionEvent"): {
            "eventType": "Started", "timestamp": T0, "triggerReason": "Authorized",
            "seqNo": 0, "transactionInfo": {"transactionId": "TX-1"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "CARD-1", "type": "ISO14443"}},
    },
)
