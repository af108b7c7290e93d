"""The version-neutral cost update command: 2.0.1 chargers get CostUpdated, 1.6 ones nothing,
and a running session is priced again only after the interval. What the command says in each
version is the tariff and cost block's test (tests/gateway/blocks/test_tariff_cost.py)."""

from decimal import Decimal

import pytest

from stations.models import Call
from stations.services import commands
from tests.support.personas import make_station, make_transaction


def test_cost_update_is_none_for_16_and_stored_for_201(personas):
    old = make_station("OLD-16", personas.site_a, ocpp_version="1.6", evses=1)
    new = make_station("NEW-201", personas.site_a, ocpp_version="2.0.1", evses=1)
    assert commands.cost_update(make_transaction(old, personas.token), Decimal("1.00")) is None
    call = commands.cost_update(make_transaction(new, personas.token), Decimal("2.50"))
    # Disconnected: stored, ended at once, never waited for.
    assert call.action == "CostUpdated" and call.status == Call.Status.NOT_CONNECTED
    assert call.payload["totalCost"] == 2.5


def test_cost_update_stops_after_the_station_said_it_does_not_support_it(personas):
    station = make_station("NEW-201", personas.site_a, ocpp_version="2.0.1", evses=1)
    tx = make_transaction(station, personas.token)
    Call.objects.create(station=station, action="CostUpdated", payload={},
                        status=Call.Status.ERROR, error_code="NotSupported")
    assert commands.cost_update(tx, Decimal("2.50")) is None


@pytest.mark.parametrize("tariff", [True, False], ids=["tariff", "no tariff"])
def test_a_running_session_is_priced_again_only_after_the_interval(personas, settings, tariff):
    """And only if it has a tariff: one that started without stays without until its end."""
    from billing.models import SessionCost
    from csms.gateway import writer
    from tests.support.billing_cast import billing_cast
    from tests.support.chargers import job, meter_value

    if tariff:
        billing_cast(personas)
    station = make_station("NEW-201", personas.site_a, ocpp_version="2.0.1", evses=1)
    tx = make_transaction(station, personas.token)

    def readings(n: int) -> None:
        writer.store([job(station, "1.6", "MeterValues", {
            "connectorId": 1, "transactionId": int(tx.transaction_id),
            "meterValue": [meter_value(f"2026-11-24T10:0{n}:00Z", 2000 + n)]}, n)])

    readings(1)
    first = SessionCost.objects.get(transaction=tx)
    assert first.state == (SessionCost.State.RUNNING if tariff else SessionCost.State.NO_TARIFF)
    readings(2)  # within COST_UPDATE_INTERVAL: not priced again
    assert SessionCost.objects.get(transaction=tx).priced_at == first.priced_at
    settings.BILLING = {**settings.BILLING, "COST_UPDATE_INTERVAL": 0}
    readings(3)
    priced_at = SessionCost.objects.get(transaction=tx).priced_at
    assert priced_at > first.priced_at if tariff else priced_at == first.priced_at
