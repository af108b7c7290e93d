"""Sessions priced as chargers report them: the tariff version at the start, the final cost
stored with the end, idle time from the connector's status, review instead of silent pricing."""

from datetime import datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import services, tariffs
from billing.models import SessionCost, TariffAssignment, TariffVersion
from stations import records
from stations.models import StatusChange, Transaction, TransactionMessage
from stations.services import transactions
from tests.support.billing_cast import at, charge, make_tariff
from tests.support.personas import status

State = SessionCost.State


def test_final_cost_is_stored_with_the_end(personas, cast):
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 1000), (30, 6000), (60, 13500)], stop=60)
    cost = tx.cost
    assert cost.state == State.FINAL and cost.customer == personas.fleet_org
    # 12.5 kWh x 0.40 = 5.00; VAT 19 % = 0.95.
    assert (cost.energy_wh, cost.net, cost.vat_amount, cost.gross) == (
        D("12500"), D("5.00"), D("0.95"), D("5.95"))
    assert services.total_cost(tx) == D("5.95")


def test_running_cost_is_shown_before_the_end(personas, cast):
    start = timezone.now() - timedelta(minutes=30)
    tx = charge(personas.station_a, personas.fleet_token, start=start,
                readings=[(0, 0), (10, 2000), (20, 4000)])
    live = services.live_cost(tx)
    assert live.energy_amount == D("1.60") and live.gross == D("1.90")
    assert tx.cost.state == State.RUNNING
    assert services.total_cost(tx) is None


def test_a_tariff_changed_mid_month_prices_each_session_with_the_version_at_its_start(
        personas, cast):
    _, tariff = cast
    tariffs.add_version(tariff, valid_from=at("2026-11-15T00:00"), price_kwh=D("0.50"),
                        vat_rate=D("19"), now=at("2026-11-14T12:00"))
    # Starts before midnight with the old version, charges mostly after: old price throughout.
    across = charge(personas.station_a, personas.fleet_token, start=at("2026-11-14T23:00"),
                    readings=[(0, 0), (120, 10000)], stop=120)
    later = charge(personas.station_a, personas.fleet_token, start=at("2026-11-20T08:00"),
                   readings=[(0, 0), (60, 10000)], stop=60)
    assert (across.cost.tariff_version.number, across.cost.net) == (1, D("4.00"))
    assert (later.cost.tariff_version.number, later.cost.net) == (2, D("5.00"))


def test_versions_and_their_windows_are_never_edited_nor_backdated(personas, cast):
    _, tariff = cast
    version = tariff.versions.get()
    version.price_kwh = D("9")
    with pytest.raises(ValidationError):
        version.save()
    with pytest.raises(ValidationError, match="past"):
        tariffs.add_version(tariff, valid_from=timezone.now() - timedelta(days=1),
                            price_kwh=D("0.5"))
    assert TariffVersion.objects.get().price_kwh == D("0.40")
    # Nor their time windows: pricing reads a version's windows once per process.
    night = tariffs.WindowSpec("night", "0123456", datetime.min.time().replace(hour=22),
                               datetime.min.time().replace(hour=6), D("0.2"), D("0"))
    later = tariffs.add_version(tariff, valid_from=timezone.now() + timedelta(days=1),
                                price_kwh=D("0.5"), windows=[night])
    window = later.windows.get()
    window.price_kwh = D("0.01")
    with pytest.raises(ValidationError, match="never changed"):
        window.save()
    assert later.windows.get().price_kwh == D("0.2")


def test_overlapping_windows_are_refused(personas, cast):
    _, tariff = cast
    night = tariffs.WindowSpec("night", "0123456", datetime.min.time().replace(hour=22),
                               datetime.min.time().replace(hour=6), D("0.2"), D("0"))
    early = tariffs.WindowSpec("early", "2", datetime.min.time().replace(hour=5),
                               datetime.min.time().replace(hour=7), D("0.3"), D("0"))
    with pytest.raises(ValidationError, match="overlap"):
        tariffs.add_version(tariff, valid_from=timezone.now() + timedelta(days=1),
                            price_kwh=D("0.5"), windows=[night, early])


def test_fleet_pricing_overrides_the_site_tariff(personas, cast):
    issuer, _ = cast
    make_tariff(issuer, name="Fleet", site=personas.site_a, customer=personas.fleet_org,
                price_kwh=D("0.30"))
    fleet = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                   readings=[(0, 0), (60, 10000)], stop=60)
    other = charge(personas.station_a, personas.token, start=at("2026-11-02T12:00"),
                   readings=[(0, 0), (60, 10000)], stop=60)
    assert (fleet.cost.net, other.cost.net) == (D("3.00"), D("4.00"))


def test_idle_fee_from_the_connector_status_after_the_end(personas, cast):
    issuer, _ = cast
    make_tariff(issuer, name="Idle", station=personas.station_a, idle_price_minute=D("0.10"),
                idle_grace_minutes=15)
    # 1.6 style: the driver ends the session at 11:00; the car leaves at 11:45.
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 0), (60, 11000)], stop=60, unplug=None)
    assert tx.cost.state == State.IDLE  # still plugged in: the idle fee still runs
    status(personas.station_a, "Available", at("2026-11-02T11:45"))  # the car leaves
    cost = SessionCost.objects.get(transaction=tx)
    # 45 min idle - 15 min grace = 30 min x 0.10 = 3.00; energy 11 x 0.40 = 4.40.
    assert (cost.state, cost.idle_seconds, cost.idle_amount, cost.net) == (
        State.FINAL, 2700, D("3.00"), D("7.40"))


def test_idle_fee_within_the_session_when_the_car_is_full(personas, cast):
    issuer, _ = cast
    make_tariff(issuer, name="Idle", station=personas.station_a, idle_price_minute=D("0.20"),
                idle_grace_minutes=10)
    # 2.0.1 style: the session lasts until the car is unplugged; charging stops at 10:40.
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 0), (20, 4000), (40, 8000), (60, 8001), (80, 8002)], stop=80,
                reason="EVDisconnected")
    cost = tx.cost
    # Idle 10:40-11:20 = 40 min - 10 grace = 30 min x 0.20 = 6.00; 8.002 kWh x 0.40 = 3.20.
    assert (cost.charging_seconds, cost.idle_seconds) == (2400, 2400)
    assert (cost.idle_amount, cost.energy_amount, cost.net) == (D("6.00"), D("3.20"),
                                                                D("9.20"))


def test_missing_energy_is_flagged_for_review_not_priced(personas, cast):
    with transaction.atomic():
        tx, _ = transactions.transaction_report(personas.station_a, records.TransactionReport(
            kind=TransactionMessage.Kind.START, timestamp=at("2026-11-02T10:00"), evse=1,
            connector=1, id_token=personas.fleet_token.value))
        tx, _ = transactions.transaction_report(personas.station_a, records.TransactionReport(
            kind=TransactionMessage.Kind.END, timestamp=at("2026-11-02T11:00"),
            transaction_id=tx.transaction_id, stop_reason="Local"))
    cost = SessionCost.objects.get(transaction=tx)
    assert cost.state == State.REVIEW and "energy unknown" in cost.note
    assert services.total_cost(tx) is None


def test_a_register_going_backwards_is_flagged(personas, cast):
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 5000), (30, 9000), (45, 2000), (60, 9500)], stop=60)
    assert tx.cost.state == State.REVIEW and "backwards" in tx.cost.note


def test_review_accept_and_exclude(personas, cast):
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 0), (60, 10000)], stop=60)
    Transaction.objects.filter(pk=tx.pk).update(needs_review=True,
                                                review_note="messages missing: 3")
    SessionCost.objects.filter(transaction=tx).delete()
    tx.refresh_from_db()
    with transaction.atomic():
        cost = services.price(tx)
    assert cost.state == State.REVIEW and "messages missing" in cost.note
    with transaction.atomic():
        cost = services.price(tx, accepted_by=personas.finance)
    assert cost.state == State.FINAL and cost.net == D("4.00")
    assert cost.reviewed_by == personas.finance


def test_sessions_without_tariff_are_not_priced(personas, cast):
    tx = charge(personas.station_b, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 0), (60, 10000)], stop=60)
    assert tx.cost.state == State.NO_TARIFF


def test_a_pricing_failure_never_loses_the_chargers_data(personas, cast, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug in pricing")

    monkeypatch.setattr(services, "price", broken)
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 0), (60, 10000)], stop=60)
    assert tx.state == Transaction.State.COMPLETED and not SessionCost.objects.exists()
    monkeypatch.undo()
    assert services.settle() == 1
    assert SessionCost.objects.get(transaction=tx).net == D("4.00")


def test_one_tariff_per_place_and_customer(personas, cast):
    issuer, standard = cast
    cheaper = make_tariff(issuer, name="Cheaper", price_kwh=D("0.30"))
    tariffs.assign(cheaper, site=personas.site_a)  # replaces Standard for everyone there
    assert TariffAssignment.objects.get(site=personas.site_a).tariff == cheaper
    with pytest.raises(IntegrityError), transaction.atomic():
        TariffAssignment.objects.create(tariff=standard, site=personas.site_a)
    tariffs.assign(standard, site=personas.site_a, customer=personas.fleet_org)
    assert TariffAssignment.objects.filter(site=personas.site_a).count() == 2


def test_settle_fixes_idle_sessions_whose_release_was_missed(personas, cast):
    issuer, _ = cast
    make_tariff(issuer, name="Idle", station=personas.station_a, idle_price_minute=D("0.10"))
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 0), (60, 11000)], stop=60, unplug=None)
    # The Available report got stored without the signal (e.g. by a bulk import).
    StatusChange.objects.create(station=personas.station_a, connector=tx.connector,
                                status="Available", timestamp=at("2026-11-02T11:10"))
    assert services.settle() == 1
    cost = SessionCost.objects.get(transaction=tx)
    assert (cost.state, cost.idle_seconds, cost.idle_amount) == (State.FINAL, 600, D("1.00"))


def test_start_and_stop_readings_only_are_charging_time_as_the_rule_says(personas, cast):
    # The rule: "with only start and stop readings, charging ends at the stop". 0.9 kWh over
    # 10 hours (90 W on average) at 0.40 €/kWh with an idle fee of 0.10 €/min after 30 min:
    # 0.36 net, 0.07 VAT, 0.43 total, no idle minute. (Priced as idle from the start it was
    # 570 min x 0.10 = 57.00 more.)
    issuer, _ = cast
    make_tariff(issuer, name="Idle", station=personas.station_a, idle_price_minute=D("0.10"),
                idle_grace_minutes=30)
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T08:00"),
                readings=[(0, 5000), (600, 5900)], stop=600)
    cost = tx.cost
    assert (cost.state, cost.charging_seconds, cost.idle_seconds) == (State.FINAL, 36000, 0)
    assert (cost.net, cost.vat_amount, cost.gross) == (D("0.36"), D("0.07"), D("0.43"))


@pytest.mark.parametrize("reason", ["Local", "DeAuthorized"])
def test_a_session_that_delivered_no_energy_is_not_billed(personas, cast, reason):
    # 60 minutes, 0 kWh (a refused card, a car that never drew): with a 0.50 session fee and
    # 0.10 €/min idle after 30 min it cost 0.50 + 3.00 = 3.50 net, 4.17 with VAT. Now nothing,
    # and the charger is told 0.
    issuer, _ = cast
    make_tariff(issuer, name="Fee", station=personas.station_a, session_fee=D("0.50"),
                idle_price_minute=D("0.10"), idle_grace_minutes=30)
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T08:00"),
                readings=[(0, 5000), (60, 5000)], stop=60, reason=reason)
    cost = tx.cost
    assert (cost.state, cost.net, cost.gross) == (State.EXCLUDED, D("0.00"), D("0.00"))
    assert "no energy" in cost.note and cost.reviewed_by is None
    assert services.total_cost(tx) == D("0.00")
    from billing import invoices

    assert invoices.generate(datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date()) == []


def test_a_tariff_may_bill_sessions_without_energy(personas, cast):
    # The option on: the 0.50 fee is billed (charging ended at the stop: no idle minute).
    issuer, _ = cast
    make_tariff(issuer, name="Fee", station=personas.station_a, session_fee=D("0.50"),
                idle_price_minute=D("0.10"), idle_grace_minutes=30, bills_empty_sessions=True)
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T08:00"),
                readings=[(0, 5000), (60, 5000)], stop=60)
    assert (tx.cost.state, tx.cost.net, tx.cost.gross) == (State.FINAL, D("0.50"), D("0.60"))


def test_two_windows_may_not_share_a_label(personas, cast):
    issuer, _ = cast
    night = tariffs.WindowSpec("night", "01234", datetime(1, 1, 1, 22).time(),
                               datetime(1, 1, 1, 6).time(), D("0.20"), D("0"))
    weekend = tariffs.WindowSpec("Night ", "56", datetime(1, 1, 1, 22).time(),
                                 datetime(1, 1, 1, 6).time(), D("0.10"), D("0"))
    with pytest.raises(ValidationError, match="Two time windows are called Night"):
        make_tariff(issuer, name="Nights", windows=[night, weekend])


def test_a_late_stop_shows_a_provisional_idle_cost_of_one_day_at_most(personas, cast):
    # A stop reported weeks late, the car still reported on the connector: the idle fee so far
    # (provisional, state idle) counts one day: 1440 min x 0.10 = 144.00 + 4.00 energy = 148.00
    # net, 176.12 total; the charger is not told a final total.
    issuer, _ = cast
    make_tariff(issuer, name="Idle", station=personas.station_a, idle_price_minute=D("0.10"))
    start = timezone.now() - timedelta(days=20)
    tx = charge(personas.station_a, personas.fleet_token, start=start,
                readings=[(0, 0), (60, 10000)], stop=60, unplug=None)
    cost = tx.cost
    assert (cost.state, cost.idle_seconds, cost.idle_amount) == (State.IDLE, 86400,
                                                                 D("144.00"))
    assert (cost.net, cost.gross) == (D("148.00"), D("176.12"))
    assert services.total_cost(tx) is None
