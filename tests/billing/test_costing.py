"""Worked examples of the costing arithmetic, with the exact amounts a person can check by hand.

No database: billing/costing.py is pure. Times are UTC unless said; the site is in Berlin
(CET = UTC+1 in winter, CEST = UTC+2 in summer).
"""

from datetime import datetime, time, timedelta
from decimal import Decimal as D
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from billing.costing import (
    InvalidMeterData,
    Prices,
    Reading,
    Session,
    Terms,
    Window,
    compute,
    price_changes,
    round_cents,
    vat_of,
)

BERLIN = ZoneInfo("Europe/Berlin")
EVERY_DAY = frozenset(range(7))


def at(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


def readings(*points: tuple[datetime, int]) -> tuple[Reading, ...]:
    return tuple(Reading(moment, D(wh)) for moment, wh in points)


def night_tariff(**options) -> Terms:
    night = Window("night", EVERY_DAY, time(22), time(6), Prices(D("0.25"), D("0")))
    return Terms(Prices(D("0.40"), D("0")), (night,), zone=BERLIN, **options)


def test_energy_is_split_by_the_meter_timeline_not_pro_rata():
    # 2 Nov 2026, 21:00-23:00 Berlin (20:00-22:00 UTC); night price from 22:00 Berlin.
    # The car takes 15 kWh in the first hour and 1 kWh in the second: 15 x 0.40 + 1 x 0.25.
    session = Session(at("2026-11-02", "20:00"), at("2026-11-02", "22:00"), readings(
        (at("2026-11-02", "20:00"), 0), (at("2026-11-02", "21:00"), 15000),
        (at("2026-11-02", "22:00"), 16000)))
    cost = compute(night_tariff(vat_rate=D("19")), session)
    assert cost.energy_amount == D("6.25")  # pro rata (8 kWh each) would be 5.20
    assert cost.net == D("6.25") and cost.vat_amount == D("1.19") and cost.gross == D("7.44")
    assert {p["label"]: p["kwh"] for p in (part.as_dict() for part in cost.parts)} == {
        "standard": "15.000", "night": "1.000"}


def test_a_boundary_between_two_readings_is_interpolated():
    # Readings at 20:40 and 21:40 UTC, 6 kWh in between; the night starts at 21:00 UTC:
    # 2 kWh before (one third of the hour) at 0.40, 4 kWh after at 0.25 = 0.80 + 1.00.
    session = Session(at("2026-11-02", "20:40"), at("2026-11-02", "21:40"), readings(
        (at("2026-11-02", "20:40"), 1000), (at("2026-11-02", "21:40"), 7000)))
    assert compute(night_tariff(), session).energy_amount == D("1.80")


def test_idle_fee_counts_after_charging_ended_and_the_grace_period():
    # Charges 10 kWh from 10:00 to 11:00, then stays plugged in; stopped at 12:00, the car
    # leaves at 12:30. Idle 90 min, grace 30 min: 60 min x 0.10 = 6.00. Charging time
    # 60 min x 0.05 = 3.00; energy 10 x 0.30 = 3.00.
    terms = Terms(Prices(D("0.30"), D("0.05")), idle_per_minute=D("0.10"),
                  idle_grace=timedelta(minutes=30))
    session = Session(at("2026-11-03", "10:00"), at("2026-11-03", "12:30"), readings(
        (at("2026-11-03", "10:00"), 0), (at("2026-11-03", "10:30"), 5000),
        (at("2026-11-03", "11:00"), 10000), (at("2026-11-03", "11:30"), 10002),
        (at("2026-11-03", "12:00"), 10004)), released=at("2026-11-03", "12:30"))
    cost = compute(terms, session)
    assert (cost.charging_seconds, cost.idle_seconds, cost.billable_idle_seconds) == (
        3600, 5400, 3600)
    assert (cost.energy_amount, cost.time_amount, cost.idle_amount) == (
        D("3.00"), D("3.00"), D("6.00"))
    assert cost.net == D("12.00")


def test_no_idle_fee_within_the_grace_period():
    terms = Terms(Prices(D("0.30"), D("0")), idle_per_minute=D("0.10"),
                  idle_grace=timedelta(minutes=30))
    session = Session(at("2026-11-03", "10:00"), at("2026-11-03", "11:29"), readings(
        (at("2026-11-03", "10:00"), 0), (at("2026-11-03", "11:00"), 10000)),
        released=at("2026-11-03", "11:29"))
    cost = compute(terms, session)
    assert cost.idle_seconds == 29 * 60 and cost.idle_amount == D("0.00")


def test_minimum_and_maximum_session_price():
    terms = Terms(Prices(D("0.40"), D("0")), session_fee=D("0.50"), min_price=D("2.00"),
                  max_price=D("30.00"))
    small = Session(at("2026-11-04", "10:00"), at("2026-11-04", "10:10"), readings(
        (at("2026-11-04", "10:00"), 0), (at("2026-11-04", "10:10"), 1000)))
    cost = compute(terms, small)  # 0.40 + 0.50 = 0.90 → minimum 2.00
    assert (cost.net, cost.cap_adjustment) == (D("2.00"), D("1.10"))
    big = Session(at("2026-11-04", "10:00"), at("2026-11-04", "12:00"), readings(
        (at("2026-11-04", "10:00"), 0), (at("2026-11-04", "12:00"), 100000)))
    cost = compute(terms, big)  # 40.00 + 0.50 = 40.50 → maximum 30.00
    assert (cost.net, cost.cap_adjustment) == (D("30.00"), D("-10.50"))


def test_rounding_is_half_up_at_the_half_cent_per_component():
    assert round_cents(Fraction(345, 1000)) == D("0.35")  # banker's rounding would say 0.34
    assert round_cents(Fraction(-345, 1000)) == D("-0.35")
    assert round_cents(Fraction(3449, 10000)) == D("0.34")
    assert round_cents(D("0.125")) == D("0.13")
    assert vat_of(D("0.50"), D("19")) == D("0.10")  # 0.095
    # 1 kWh at 0.345 and 60 charging minutes at 0.00575: each component 0.345 → 0.35; the
    # components are rounded separately, so the net is 0.70 (not round(0.69) = 0.69).
    terms = Terms(Prices(D("0.345"), D("0.00575")))
    session = Session(at("2026-11-05", "10:00"), at("2026-11-05", "11:00"), readings(
        (at("2026-11-05", "10:00"), 0), (at("2026-11-05", "11:00"), 1000)))
    cost = compute(terms, session)
    assert (cost.energy_amount, cost.time_amount, cost.net) == (D("0.35"), D("0.35"),
                                                                D("0.70"))


def test_amounts_are_exact_before_rounding():
    # A third of a kWh per hour-thirds: 0.40 x (1/3 + 1/3 + 1/3) kWh is exactly 0.40, not
    # 0.3999… truncated by intermediate rounding.
    terms = Terms(Prices(D("0.40"), D("0")))
    session = Session(at("2026-11-05", "10:00"), at("2026-11-05", "11:00"), readings(
        (at("2026-11-05", "10:00"), 0), (at("2026-11-05", "10:20"), 333),
        (at("2026-11-05", "10:40"), 667), (at("2026-11-05", "11:00"), 1000)))
    assert compute(terms, session).energy_amount == D("0.40")


def test_time_of_use_follows_the_wall_clock_across_the_autumn_dst_change():
    # 25 Oct 2026: at 01:00 UTC Berlin goes from 03:00 CEST back to 02:00 CET, so 02:00-03:00
    # happens twice. A Sunday window 02:00-03:00 covers both: 00:00-02:00 UTC, all 20 kWh.
    peak = Window("peak", frozenset({6}), time(2), time(3), Prices(D("1.00"), D("0")))
    terms = Terms(Prices(D("0.10"), D("0")), (peak,), zone=BERLIN)
    session = Session(at("2026-10-25", "00:00"), at("2026-10-25", "02:00"), readings(
        (at("2026-10-25", "00:00"), 0), (at("2026-10-25", "02:00"), 20000)))
    assert compute(terms, session).energy_amount == D("20.00")


def test_time_of_use_follows_the_wall_clock_across_the_spring_dst_change():
    # 29 Mar 2026: at 01:00 UTC Berlin jumps from 02:00 CET to 03:00 CEST; a window from
    # 02:00 to 03:00 never happens, and one from 02:30 starts at the jump.
    gone = Window("gone", frozenset({6}), time(2), time(3), Prices(D("1.00"), D("0")))
    session = Session(at("2026-03-29", "00:00"), at("2026-03-29", "02:00"), readings(
        (at("2026-03-29", "00:00"), 0), (at("2026-03-29", "02:00"), 20000)))
    terms = Terms(Prices(D("0.10"), D("0")), (gone,), zone=BERLIN)
    assert compute(terms, session).energy_amount == D("2.00")
    half = Window("late", frozenset({6}), time(2, 30), time(3, 30), Prices(D("1.00"), D("0")))
    terms = Terms(Prices(D("0.10"), D("0")), (half,), zone=BERLIN)
    assert price_changes(session.started_at, session.until, terms) == [
        at("2026-03-29", "00:30"), at("2026-03-29", "01:00"), at("2026-03-29", "01:30")]
    # 01:00-01:30 UTC is 03:00-03:30 CEST: 5 kWh at 1.00, 15 kWh at 0.10.
    assert compute(terms, session).energy_amount == D("6.50")


def test_windows_by_weekday():
    weekend = Window("weekend", frozenset({5, 6}), time(0), time(0), Prices(D("0.20"), D("0")))
    terms = Terms(Prices(D("0.40"), D("0")), (weekend,), zone=BERLIN)
    # Friday 6 Nov 2026 22:00 UTC = 23:00 Berlin → Saturday from 23:00 UTC.
    session = Session(at("2026-11-06", "22:00"), at("2026-11-07", "00:00"), readings(
        (at("2026-11-06", "22:00"), 0), (at("2026-11-07", "00:00"), 10000)))
    assert compute(terms, session).energy_amount == D("3.00")  # 5 x 0.40 + 5 x 0.20


def test_a_register_going_backwards_is_not_priced():
    session = Session(at("2026-11-05", "10:00"), at("2026-11-05", "11:00"), readings(
        (at("2026-11-05", "10:00"), 5000), (at("2026-11-05", "10:30"), 4000)))
    with pytest.raises(InvalidMeterData, match="backwards"):
        compute(Terms(Prices(D("0.40"), D("0"))), session)


def test_a_long_gap_across_a_price_change_is_reported():
    session = Session(at("2026-11-02", "19:00"), at("2026-11-02", "23:00"), readings(
        (at("2026-11-02", "19:00"), 0), (at("2026-11-02", "23:00"), 20000)))
    cost = compute(night_tariff(), session)
    assert cost.problems and "across a change of price" in cost.problems[0]


def test_a_running_session_counts_as_charging_until_now():
    terms = Terms(Prices(D("0.40"), D("0.10")), idle_per_minute=D("1.00"))
    session = Session(at("2026-11-05", "10:00"), at("2026-11-05", "10:30"), readings(
        (at("2026-11-05", "10:00"), 0), (at("2026-11-05", "10:20"), 3000)), running=True)
    cost = compute(terms, session)
    assert (cost.charging_seconds, cost.idle_seconds) == (1800, 0)
    assert (cost.energy_amount, cost.time_amount) == (D("1.20"), D("3.00"))
