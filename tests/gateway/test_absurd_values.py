"""Readings that are valid JSON and valid per schema but absurd for the domain (registers of
10^13 Wh or 1e308, negative or backwards registers, gigawatts) reach the CSMS through a real
charger socket: every message is answered, every page, API list and invoice run that reads them
still works, and an absurd session is marked for review with a readable reason instead of
being priced."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing import invoices
from billing.models import SessionCost
from stations.models import Evse, MessageLog, MeterSample, Transaction
from tests.support.chargers import RealCharger, serving
from tests.support.personas import Personas

pytestmark = pytest.mark.django_db(transaction=True)

# The station's EVSE delivers 22 kW at most (set below): a plausible session charges 11 kW.
MAX_POWER_W = 22_000
MINUTE = 60


@dataclass(frozen=True)
class Session:
    """A session as the charger reports it: the start register (Wh), three meter values a
    minute apart, each (register Wh, power W), and the stop register."""

    start_wh: Decimal
    readings: tuple[tuple[Decimal, Decimal], ...]
    stop_wh: Decimal
    absurd: bool  # what the test expects, from how the values were drawn


def _plausible(start: int) -> Session:
    # 11 kW: 183 Wh a minute.
    readings = tuple((Decimal(start + 183 * n), Decimal(11_000)) for n in range(1, 4))
    return Session(Decimal(start), readings, Decimal(start + 183 * 4), absurd=False)


HUGE = st.sampled_from(["1e13", "1e308", "9.99e307", "1e20", "123456789012345678901234567890"])


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    """A plausible session, or one with one absurd thing in it."""
    start = draw(st.integers(0, 10**9))
    plain = _plausible(start)
    kind = draw(st.sampled_from(["plain", "huge start", "huge stop", "huge register",
                                 "negative register", "backwards", "gigawatts", "too fast",
                                 "huge power"]))
    readings = list(plain.readings)
    stop = plain.stop_wh
    at = draw(st.integers(0, 2))
    if kind == "plain":
        return plain
    if kind == "huge start":
        return Session(Decimal(draw(HUGE)), plain.readings, plain.stop_wh, absurd=True)
    if kind == "huge stop":
        stop = Decimal(draw(HUGE))
    elif kind == "huge register":
        readings[at] = (Decimal(draw(HUGE)), readings[at][1])
    elif kind == "negative register":
        readings[at] = (-Decimal(draw(st.integers(1, 10**15))), readings[at][1])
    elif kind == "backwards":
        readings[at] = (plain.start_wh - draw(st.integers(1, 10**6)), readings[at][1])
    elif kind == "gigawatts":
        readings[at] = (readings[at][0], Decimal(draw(st.integers(10**9, 10**15))))
    elif kind == "huge power":
        readings[at] = (readings[at][0], Decimal(draw(HUGE)))
    else:  # the register rises by a GWh within minutes: a GW EVSE
        rise = Decimal(draw(st.integers(10**6, 10**9)))
        readings = [(wh + rise, power) for wh, power in readings]
        stop += rise
    return Session(plain.start_wh, tuple(readings), stop, absurd=True)


def _meter_value(minute: int, wh: Decimal, power: Decimal) -> dict:
    return {"timestamp": f"2026-11-24T10:{minute:02d}:00Z", "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": str(power), "measurand": "Power.Active.Import", "unit": "W"}]}


def _charge_16(station_id: str, session: Session, day: int) -> list[list]:
    """The session over a real socket (OCPP 1.6); returns every reply frame."""

    async def flow() -> list[list]:
        async with serving() as port, RealCharger.connected(port, station_id, "1.6") as cp:
            replies = [await cp.call("StartTransaction", {
                "connectorId": 1, "idTag": "TOKEN-FLEET", "meterStart": int(session.start_wh),
                "timestamp": f"2026-11-{day:02d}T10:00:00Z"})]
            tx_id = replies[0][2]["transactionId"]
            for n, (wh, power) in enumerate(session.readings, 1):
                value = _meter_value(n, wh, power)
                value["timestamp"] = f"2026-11-{day:02d}T10:{n:02d}:00Z"
                replies.append(await cp.call("MeterValues", {
                    "connectorId": 1, "transactionId": tx_id, "meterValue": [value]}))
            stop = session.stop_wh
            replies.append(await cp.call("StopTransaction", {
                "transactionId": tx_id, "timestamp": f"2026-11-{day:02d}T10:04:00Z",
                # meterStop is an integer in 1.6: 1e308 as one is a 309-digit number.
                "meterStop": int(stop)}))
            await cp.call("StatusNotification", {
                "connectorId": 1, "status": "Available", "errorCode": "NoError",
                "timestamp": f"2026-11-{day:02d}T10:05:00Z"})
            return replies

    return async_to_sync(flow)()


def _everything_reads(personas: Personas, client, api, tx: Transaction) -> None:
    client.force_login(personas.operator)
    for url in ["/", f"/stations/{tx.station_id}/", "/sessions/", f"/sessions/{tx.pk}/",
                "/billing/sessions/", f"/billing/sessions/{tx.pk}/", "/billing/revenue/",
                f"/sites/{personas.site_a.pk}/"]:
        assert client.get(url).status_code == 200, url
    operator = api(personas.operator)
    for url in ["/api/v1/transactions/", f"/api/v1/transactions/{tx.pk}/",
                f"/api/v1/transactions/{tx.pk}/samples/", "/api/v1/billing/session-costs/",
                f"/api/v1/stations/{tx.station_id}/", "/api/v1/billing/revenue/"]:
        assert operator.get(url).status_code == 200, url
    invoices.generate(date(2026, 11, 1), date(2026, 11, 30))


@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=sessions())
def test_absurd_readings_are_kept_flagged_and_break_nothing(personas, cast, client, api,
                                                            session):
    station = personas.station_a
    Evse.objects.update_or_create(station=station, number=1,
                                  defaults={"max_power_w": MAX_POWER_W})
    # Each example on its own day, so that no session's status reports touch another's.
    day = Transaction.objects.count() % 28 + 1
    logged = MessageLog.objects.count()

    replies = _charge_16(station.pk, session, day)

    assert all(reply[0] == 3 for reply in replies), replies  # every message stored
    tx = Transaction.objects.select_related("cost").get(
        pk=Transaction.objects.latest("created_at").pk)
    _everything_reads(personas, client, api, tx)
    # Nothing lost: every frame of the session is in the message log, as it was sent.
    assert MessageLog.objects.count() - logged >= 2 * len(replies)
    cost = SessionCost.objects.get(transaction=tx)
    if session.absurd:
        assert tx.needs_review, tx.review_note
        assert tx.review_note and "Traceback" not in tx.review_note
        assert cost.state == SessionCost.State.REVIEW, (cost.state, cost.note)
        assert cost.invoice_id is None
    else:
        assert not tx.needs_review, tx.review_note
        assert cost.state == SessionCost.State.FINAL, cost.note


def test_an_absurd_register_is_stored_as_the_charger_said_it(personas):
    station = personas.station_a
    session = Session(Decimal(1000), ((Decimal(1183), Decimal(-5 * 10**12)),),
                      Decimal(10**13), absurd=True)
    _charge_16(station.pk, session, 24)

    tx = Transaction.objects.get(station=station)
    assert tx.meter_stop_wh == Decimal(10**13)
    power = MeterSample.objects.get(transaction=tx, measurand="Power.Active.Import")
    assert power.value == Decimal(-5 * 10**12)
    assert tx.review_note == (
        "Power.Active.Import of -5,000,000,000 kW at 2026-11-24 10:01:00 UTC is above the EVSE's"
        " maximum of 350 kW; energy register reading of 10,000,000,000,000 Wh is outside 0 to "
        "100,000,000,000 Wh")


def test_a_201_register_of_1e308_and_a_huge_multiplier_are_answered_and_flagged(
        personas, cast, client, api):
    station = personas.station_a

    def energy(value: object, context: str, minute: int, **unit) -> list[dict]:
        return [{"timestamp": f"2026-11-24T10:{minute:02d}:00Z", "sampledValue": [
            {"value": value, "context": context, "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh", **unit}}]}]

    def event(kind: str, seq: int, minute: int, meter_value: list[dict]) -> dict:
        return {"eventType": kind, "timestamp": f"2026-11-24T10:{minute:02d}:00Z", "seqNo": seq,
                "triggerReason": "MeterValuePeriodic", "transactionInfo": {"transactionId": "t1"},
                "idToken": {"idToken": "TOKEN-FLEET", "type": "ISO14443"},
                "evse": {"id": 1, "connectorId": 1}, "meterValue": meter_value}

    async def flow() -> list[list]:
        async with serving() as port, RealCharger.connected(port, station.pk, "2.0.1") as cp:
            return [
                await cp.call("TransactionEvent", event(
                    "Started", 0, 0, energy(1000, "Transaction.Begin", 0))),
                await cp.call("TransactionEvent", event(
                    "Updated", 1, 1, energy(1e308, "Sample.Periodic", 1))),
                await cp.call("TransactionEvent", event(
                    "Updated", 2, 2, energy(5, "Sample.Periodic", 2, multiplier=10**6))),
                await cp.call("MeterValues", {"evseId": 1, "meterValue": energy(
                    -1e300, "Sample.Periodic", 3)}),
                await cp.call("TransactionEvent", event(
                    "Ended", 3, 4, energy(1500, "Transaction.End", 4))),
            ]

    replies = async_to_sync(flow)()

    assert [reply[0] for reply in replies] == [3] * 5, replies
    tx = Transaction.objects.get(station=station)
    _everything_reads(personas, client, api, tx)
    # Beyond any meter: not in a numeric column, but the frames keep them.
    assert not MeterSample.objects.filter(transaction=tx, value__gt=10**6).exists()
    assert MessageLog.objects.filter(station=station, action="TransactionEvent",
                                     payload__seqNo=1).exists()
    assert tx.needs_review
    assert "Energy.Active.Import.Register reading beyond any meter's range at 2026-11-24 " \
           "10:01:00 UTC" in tx.review_note, tx.review_note
    assert SessionCost.objects.get(transaction=tx).state == SessionCost.State.REVIEW


def test_an_evses_maximum_power_is_set_through_the_api(personas, api):
    station = personas.station_a
    Evse.objects.get_or_create(station=station, number=1)
    url = f"/api/v1/stations/{station.pk}/evses/1/"

    assert api(personas.operator).patch(url, {"max_power_w": 22000}, format="json").json()[
        "max_power_w"] == 22000
    refused = api(personas.operator).patch(url, {"max_power_w": 10**30}, format="json")
    assert refused.status_code == 400
    assert "max_power_w" in refused.json()
    assert api(personas.outsider).patch(url, {"max_power_w": 1000}, format="json"
                                        ).status_code == 404
    assert Evse.objects.get(station=station, number=1).max_power_w == 22000
    assert api(personas.operator).get(f"/api/v1/stations/{station.pk}/").json()["evses"][0][
        "max_power_w"] == 22000
