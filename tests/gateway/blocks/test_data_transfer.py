"""Data transfer: vendor data in both versions."""

from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "DataTransfer"): {"vendorId": "com.example", "messageId": "Hello",
                                  "data": "{}"},
        ("2.0.1", "DataTransfer"): {"vendorId": "com.example", "data": {"any": 1}},
    },
)
