"""Properties of the costing arithmetic over generated sessions: a reading on the meter's own
line changes nothing, paying more never costs less, and a charger's clock cannot make pricing
walk for ever (a span beyond the bound is refused, so the work is bounded)."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.costing import (
    MAX_PRICED_SPAN,
    ImplausibleSpan,
    Prices,
    Reading,
    Session,
    Terms,
    Unpriceable,
    Window,
    compute,
    price_changes,
)

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = Window("night", frozenset(range(7)), time(22), time(6), Prices(D("0.25"), D("0.01")))
WEEKEND = Window("weekend", frozenset({5, 6}), time(8), time(20), Prices(D("0.31"), D("0")))

cents = st.integers(min_value=0, max_value=100).map(lambda n: D(n) / 100)
starts = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                      timezones=st.just(UTC))


@st.composite
def terms(draw) -> Terms:
    return Terms(Prices(draw(cents), draw(cents) / 10), draw(st.sampled_from([(), (NIGHT,),
                                                                              (NIGHT, WEEKEND)])),
                 session_fee=draw(cents), idle_per_minute=draw(cents) / 10,
                 idle_grace=timedelta(minutes=draw(st.integers(0, 60))),
                 vat_rate=D("19"), zone=BERLIN)


@st.composite
def charging_sessions(draw) -> tuple[Session, int]:
    """A session charging at least 120 W throughout (whole Wh per minute, so a reading on the
    line at any whole minute is exact), released some minutes after its end; and a minute
    at which to split it."""
    start = draw(starts)
    minutes = draw(st.integers(2, 3 * 24 * 60))
    wh_per_minute = draw(st.integers(2, 400))
    split = draw(st.integers(1, minutes - 1))
    end = start + timedelta(minutes=minutes)
    released = end + timedelta(minutes=draw(st.integers(0, 600)))
    readings = (Reading(start, D(0)), Reading(end, D(wh_per_minute * minutes)))
    return Session(start, released, readings, released=released), split


def _split(session: Session, minute: int) -> Session:
    first, last = session.readings
    wh_per_minute = last.wh / int((last.at - first.at).total_seconds() // 60)
    middle = Reading(first.at + timedelta(minutes=minute), wh_per_minute * minute)
    return Session(session.started_at, session.until, (first, middle, last), session.released)


@settings(deadline=None)  # exact rational arithmetic; the bound is tested by counting
@given(terms(), charging_sessions())
def test_a_reading_on_the_meters_line_changes_nothing(tariff, drawn):
    session, minute = drawn
    whole, split = compute(tariff, session), compute(tariff, _split(session, minute))
    assert (whole.net, whole.gross, whole.charging_seconds, whole.idle_seconds) == (
        split.net, split.gross, split.charging_seconds, split.idle_seconds)


@settings(deadline=None)  # exact rational arithmetic; the bound is tested by counting
@given(terms(), charging_sessions(), st.integers(1, 600))
def test_a_later_release_never_costs_less(tariff, drawn, later_minutes):
    session, _ = drawn
    later = session.released + timedelta(minutes=later_minutes)
    longer = Session(session.started_at, later, session.readings, released=later)
    assert compute(tariff, longer).net >= compute(tariff, session).net


@settings(deadline=None)  # exact rational arithmetic; the bound is tested by counting
@given(terms(), charging_sessions(), cents)
def test_a_higher_energy_price_never_costs_less(tariff, drawn, increase):
    session, _ = drawn
    dearer = Terms(Prices(tariff.prices.per_kwh + increase, tariff.prices.per_minute),
                   tariff.windows, tariff.session_fee, tariff.idle_per_minute, tariff.idle_grace,
                   vat_rate=tariff.vat_rate, zone=tariff.zone)
    assert compute(dearer, session).net >= compute(tariff, session).net


@settings(deadline=None)  # exact rational arithmetic; the bound is tested by counting
@given(terms(), charging_sessions())
def test_amounts_are_never_negative_and_vat_is_the_rate_of_the_net(tariff, drawn):
    session, _ = drawn
    cost = compute(tariff, session)
    assert min(cost.energy_amount, cost.time_amount, cost.idle_amount, cost.net) >= 0
    assert cost.gross == cost.net + cost.vat_amount
    assert abs(cost.vat_amount - cost.net * D("0.19")) <= D("0.005")


any_moment = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                          timezones=st.just(UTC))


@settings(deadline=None)  # exact rational arithmetic; the bound is tested by counting
@given(any_moment, any_moment, st.sampled_from([(), (NIGHT,), (NIGHT, WEEKEND)]))
def test_any_charger_clock_is_priced_or_refused_never_walked(first, second, windows):
    # Year 1 to 9999: either the span is within the bound, and the instants pricing visits
    # are a few per day of it, or the session goes to a person. Never an overflow.
    start, end = min(first, second), max(first, second)
    tariff = Terms(Prices(D("0.40"), D("0")), windows, zone=BERLIN)
    session = Session(start, end, (Reading(start, D(0)), Reading(end, D(5000))),
                      released=end)
    try:
        instants = price_changes(start, end, tariff)
        cost = compute(tariff, session)
    except ImplausibleSpan:
        assert end - start > MAX_PRICED_SPAN or start.year < 2 or end.year > 9998
        return
    except Unpriceable as error:
        raise AssertionError(error) from None
    assert len(instants) <= (MAX_PRICED_SPAN.days + 3) * 2 * 5
    assert cost.net >= 0


def test_a_session_of_centuries_is_refused_not_walked():
    start = datetime(2026, 11, 3, 8, tzinfo=UTC)
    end = datetime(2300, 1, 1, tzinfo=UTC)
    session = Session(start, end, (Reading(start, D(0)), Reading(end, D(5000))), released=end)
    with pytest.raises(ImplausibleSpan, match="more than the 31"):
        compute(Terms(Prices(D("0.40"), D("0")), (NIGHT,), zone=BERLIN), session)
