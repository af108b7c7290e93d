"""Tariff and cost: a session's running cost shown at a 2.0.1 charger; 1.6 has no word for it."""

from decimal import Decimal

import pytest

from csms.gateway.frames import CALL, validate
from csms.gateway.table import TABLE, VersionProtocol
from stations.services import commands
from tests.support.examples import Examples

EXAMPLES = Examples(
    sent={
        ("2.0.1", commands.CostUpdate): (
            commands.CostUpdate(transaction_id="TX-1", total=Decimal("3.45")), {}),
    },
)


def test_builders_speak_each_version():
    action, payload = VersionProtocol(TABLE, "2.0.1").build(
        commands.CostUpdate("tx-1", Decimal("12.34")))
    assert (action, payload) == ("CostUpdated", {"totalCost": Decimal("12.34"),
                                                 "transactionId": "tx-1"})
    validate(CALL, action, payload, "2.0.1")
    with pytest.raises(commands.CommandError, match=r"1\.6 has no message"):
        VersionProtocol(TABLE, "1.6").build(commands.CostUpdate("1", Decimal("1")))
