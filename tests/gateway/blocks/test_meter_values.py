"""Meter values outside transaction messages."""

from tests.support.chargers import T0
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "MeterValues"): {"connectorId": 1, "meterValue": [
            {"timestamp": T0, "sampledValue": [{"value": "1.5", "unit": "kWh"}]}]},
        ("2.0.1", "MeterValues"): {"evseId": 1, "meterValue": [
            {"timestamp": T0, "sampledValue": [
                {"value": 1500, "measurand": "Energy.Active.Import.Register"}]}]},
    },
)
