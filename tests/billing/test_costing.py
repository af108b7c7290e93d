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


def test_with_only_start_and_stop_readings_charging_ends_at_the_stop():
    # 0.9 kWh over 10 hours (90 W on average), no reading in between: nothing says when the
    # energy flowed, so the whole session is charging time and none of it idle.
    # 0.9 x 0.30 = 0.27; with charging ended at the start it was 570 idle min x 0.10 = 57.00 more.
    terms = Terms(Prices(D("0.30"), D("0")), idle_per_minute=D("0.10"),
                  idle_grace=timedelta(minutes=30))
    session = Session(at("2026-11-03", "08:00"), at("2026-11-03", "18:00"), readings(
        (at("2026-11-03", "08:00"), 0), (at("2026-11-03", "18:00"), 900)),
        released=at("2026-11-03", "18:00"))
    cost = compute(terms, session)
    assert (cost.charging_seconds, cost.idle_seconds, cost.idle_amount) == (36000, 0, D("0.00"))
    assert cost.net == D("0.27")


def test_low_power_between_readings_is_idle_time():
    # The same 0.9 kWh with a reading at 09:00 (800 Wh: 800 W, charging) and 18:00 (100 Wh in
    # 9 h: 11 W): charging ended at 09:00; idle 9 h - 30 min grace = 510 min x 0.10 = 51.00.
    terms = Terms(Prices(D("0.30"), D("0")), idle_per_minute=D("0.10"),
                  idle_grace=timedelta(minutes=30))
    session = Session(at("2026-11-03", "08:00"), at("2026-11-03", "18:00"), readings(
        (at("2026-11-03", "08:00"), 0), (at("2026-11-03", "09:00"), 800),
        (at("2026-11-03", "18:00"), 900)), released=at("2026-11-03", "18:00"))
    cost = compute(terms, session)
    assert (cost.charging_seconds, cost.idle_amount, cost.net) == (3600, D("51.00"), D("51.27"))


def test_a_session_without_energy_costs_nothing_unless_the_tariff_bills_it():
    # 60 minutes, 0 kWh: fee 0.50, 0.05 per charging minute, minimum price 1.00. Not billed by
    # default; with the option, 0.50 + 60 x 0.05 = 3.50.
    options = {"session_fee": D("0.50"), "min_price": D("1.00"), "vat_rate": D("19")}
    session = Session(at("2026-11-03", "08:00"), at("2026-11-03", "09:00"), readings(
        (at("2026-11-03", "08:00"), 1234), (at("2026-11-03", "09:00"), 1234)),
        released=at("2026-11-03", "09:00"))
    free = compute(Terms(Prices(D("0.30"), D("0.05")), **options), session)
    assert free.empty and (free.net, free.gross, free.session_fee) == (D("0.00"), D("0.00"),
                                                                       D("0.00"))
    billed = compute(Terms(Prices(D("0.30"), D("0.05")), bills_empty_sessions=True, **options),
                     session)
    assert not billed.empty and (billed.net, billed.gross) == (D("3.50"), D("4.17"))


def test_windows_with_the_same_label_keep_their_own_prices():
    # "night" on weekdays at 0.20 and "night" at the weekend at 0.10, 0.40 by day. Friday
    # 6 Nov 2026 23:00 to Saturday 23:00 Berlin, 1 kWh an hour: 7 h weekday night (Fri 23:00 -
    # Sat 06:00), 16 h day, 1 h weekend night: 1.40 + 6.40 + 0.10 = 7.90 (merged by label, the
    # 8 night hours all cost 0.20: 8.00).
    weekday_night = Window("night", frozenset(range(5)), time(22), time(6),
                           Prices(D("0.20"), D("0")))
    weekend_night = Window("night", frozenset({5, 6}), time(22), time(6),
                           Prices(D("0.10"), D("0")))
    terms = Terms(Prices(D("0.40"), D("0")), (weekday_night, weekend_night), zone=BERLIN)
    session = Session(at("2026-11-06", "22:00"), at("2026-11-07", "22:00"), readings(*(
        (at("2026-11-06", "22:00") + timedelta(hours=h), 1000 * h) for h in range(25))))
    cost = compute(terms, session)
    assert cost.energy_amount == D("7.90")
    assert [(p["label"], p["kwh"], p["price_kwh"]) for p in
            (part.as_dict() for part in cost.parts)] == [
        ("night", "7.000", "0.20"), ("standard", "16.000", "0.40"), ("night", "1.000", "0.10")]


def test_provisional_idle_time_counts_one_day_at_most():
    # Stopped and still plugged in for three days as far as anyone knows (a stop reported
    # late): the idle fee so far counts one day, 1440 min x 0.10 = 144.00, not 432.00.
    terms = Terms(Prices(D("0.30"), D("0")), idle_per_minute=D("0.10"))
    session = Session(at("2026-11-03", "08:00"), at("2026-11-06", "09:00"), readings(
        (at("2026-11-03", "08:00"), 0), (at("2026-11-03", "09:00"), 10000)))
    cost = compute(terms, session)
    assert (cost.idle_seconds, cost.idle_amount) == (86400, D("144.00"))
