"""Tariff and cost: a session's running cost shown at a 2.0.1 charger."""

from decimal import Decimal

from stations.services import commands
from tests.support.examples import Examples

EXAMPLES = Examples(
    sent={
        ("2.0.1", commands.CostUpdate): (
            commands.CostUpdate(transaction_id="TX-1", total=Decimal("3.45")), {}),
    },
)
