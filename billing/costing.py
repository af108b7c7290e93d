"""What a charging session costs: pure arithmetic on a tariff's terms and a session's facts.

The rounding rule (one, everywhere): amounts are computed exactly — rational numbers, no
intermediate rounding — and each component of a session (energy, charging time, idle time) is
rounded once, half up (0.005 → 0.01), to the cent after summing its exact parts. The session fee
is added as it is, then the minimum and maximum session prices apply to the sum. VAT on a
session (for the charger's display) is its net times the rate, rounded half up; on an invoice
VAT is computed per rate on the sum of the lines' nets, rounded half up (EN 16931 BR-CO-17).

Energy is split across time-of-use windows by the session's meter readings: the register is
interpolated linearly between readings, and the energy between two instants is the difference
of the interpolated register, so energy charged at night is billed at the night price even if
the session started in the day. Window edges are wall-clock times in the site's time zone;
the instants where the price changes are found per calendar day with zoneinfo (both folds of a
repeated hour, and the DST transitions themselves), so a session across a DST change is priced
by the wall clock the driver sees.
"""

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from stations import plausibility

CENT = Decimal("0.01")
UTC_ZONE = ZoneInfo("UTC")
# A meter interval whose average power is below this is the car not charging (full, paused):
# the time after the last charging interval is idle. Meters of parked cars creep a few watts.
IDLE_BELOW_W = 100
# Meter readings further apart than this, across a change of price, make the split a guess.
MAX_READING_GAP = timedelta(hours=1)
# Pricing walks a session day by day (the wall clock's windows, DST); a charger's clock chooses
# how many days. Longer than this is a clock or a lost stop, not a session: a person looks.
MAX_PRICED_SPAN = timedelta(days=31)
# A car still reported on the connector a day after its session is a lost status report: idle
# time, provisional or final, counts for one day at most.
IDLE_LIMIT = timedelta(hours=24)


def round_cents(amount: Fraction | Decimal) -> Decimal:
    """Half up (away from zero) to the cent, from an exact amount."""
    if isinstance(amount, Decimal):
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    cents_times_two = abs(amount) * 200
    cents = (cents_times_two.numerator // cents_times_two.denominator + 1) // 2
    return (Decimal(cents) / 100 * (1 if amount >= 0 else -1)).quantize(CENT)


def vat_of(net: Decimal, rate_percent: Decimal) -> Decimal:
    return round_cents(Fraction(net) * Fraction(rate_percent) / 100)


@dataclass(frozen=True, slots=True)
class Prices:
    per_kwh: Decimal
    per_minute: Decimal


@dataclass(frozen=True, slots=True)
class Window:
    """Other prices on `weekdays` (0 = Monday) from `start` to `end` (wall clock); an end at or
    before the start runs into the next day."""

    label: str
    weekdays: frozenset[int]
    start: time
    end: time
    prices: Prices

    def covers(self, moment: datetime) -> bool:
        day, clock = moment.weekday(), moment.time().replace(tzinfo=None)
        if self.start < self.end:
            return day in self.weekdays and self.start <= clock < self.end
        return ((day in self.weekdays and clock >= self.start)
                or ((day - 1) % 7 in self.weekdays and clock < self.end))


@dataclass(frozen=True, slots=True)
class Terms:
    """A tariff version as the arithmetic needs it."""

    prices: Prices
    windows: tuple[Window, ...] = ()
    session_fee: Decimal = Decimal("0")
    idle_per_minute: Decimal = Decimal("0")
    idle_grace: timedelta = timedelta(0)
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    vat_rate: Decimal = Decimal("0")
    zone: ZoneInfo = UTC_ZONE
    default_label: str = "standard"
    # Whether a session that delivered no energy (refused, never charged) is billed at all.
    bills_empty_sessions: bool = False

    def window_at(self, moment: datetime) -> int | None:
        """The position of the window covering `moment`, None outside every window. Windows
        are told apart by themselves: two may share a label and still have their own prices."""
        local = moment.astimezone(self.zone)
        for position, window in enumerate(self.windows):
            if window.covers(local):
                return position
        return None

    def label_and_prices(self, position: int | None) -> tuple[str, Prices]:
        if position is None:
            return self.default_label, self.prices
        window = self.windows[position]
        return window.label, window.prices


@dataclass(frozen=True, slots=True)
class Reading:
    at: datetime
    wh: Decimal


@dataclass(frozen=True, slots=True)
class Session:
    """What is known of a session when it is priced.

    readings: the energy register (start reading first), sorted by time. until: the end of the
    session, or now for a running one. released: when the car left the connector (the end of
    idle time); None while it is still there (running or stopped and plugged): idle runs to
    `until`. running: the time after the last reading counts as charging if the last interval
    was charging (a reading is due, not missing).
    """

    started_at: datetime
    until: datetime
    readings: tuple[Reading, ...]
    released: datetime | None = None
    running: bool = False
    # The EVSE's maximum power: readings it cannot have delivered are not priced
    # (stations/plausibility.py). None: the readings are taken as they are.
    max_power_w: int | None = None


@dataclass(slots=True)
class Part:
    """The share of one time-of-use window."""

    label: str
    prices: Prices
    energy_wh: Fraction = Fraction(0)
    charging_seconds: Fraction = Fraction(0)

    def as_dict(self) -> dict:
        return {"label": self.label,
                "kwh": str((Decimal(self.energy_wh.numerator) / self.energy_wh.denominator
                            / 1000).quantize(Decimal("0.001"))),
                "minutes": str((Decimal(self.charging_seconds.numerator)
                                / self.charging_seconds.denominator / 60)
                               .quantize(Decimal("0.1"))),
                "price_kwh": str(self.prices.per_kwh), "price_minute": str(self.prices.per_minute)}


@dataclass(slots=True)
class Cost:
    energy_wh: Decimal
    charging_seconds: int
    idle_seconds: int
    billable_idle_seconds: int
    energy_amount: Decimal
    time_amount: Decimal
    idle_amount: Decimal
    session_fee: Decimal
    cap_adjustment: Decimal
    net: Decimal
    vat_rate: Decimal
    vat_amount: Decimal
    gross: Decimal
    parts: list[Part] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Delivered no energy, and the tariff does not bill such sessions: every amount is zero.
    empty: bool = False


class Unpriceable(ValueError):
    """The session cannot be priced as it is (a person has to look)."""


class InvalidMeterData(Unpriceable):
    """The readings cannot be priced as they are."""


class ImplausibleSpan(Unpriceable):
    """The session's times span more than pricing accepts (a charger's clock, a lost stop)."""


def check_readings(readings: Sequence[Reading], max_power_w: int | None = None) -> None:
    if not readings:
        raise InvalidMeterData("no energy readings")
    for before, after in itertools.pairwise(readings):
        if after.wh < before.wh:
            raise InvalidMeterData(
                f"energy register went backwards at {after.at:%Y-%m-%d %H:%M:%S} UTC "
                f"({before.wh} → {after.wh} Wh)")
    if max_power_w is not None and (problem := plausibility.readings_problem(
            [(r.at, r.wh) for r in readings], max_power_w)) is not None:
        raise InvalidMeterData(problem)


def _seconds(delta: timedelta) -> Fraction:
    return Fraction(delta.days * 86400 + delta.seconds) + Fraction(delta.microseconds, 10**6)


class Register:
    """The energy register as a function of time, linear between readings, flat outside."""

    def __init__(self, readings: Sequence[Reading]):
        self.readings = readings
        self.times = [reading.at for reading in readings]

    def at(self, moment: datetime) -> Fraction:
        readings = self.readings
        if moment <= readings[0].at:
            return Fraction(readings[0].wh)
        if moment > readings[-1].at:
            return Fraction(readings[-1].wh)
        after_index = bisect.bisect_left(self.times, moment)
        before, after = readings[after_index - 1], readings[after_index]
        span = _seconds(after.at - before.at)
        if span == 0:
            return Fraction(after.wh)
        share = _seconds(moment - before.at) / span
        return Fraction(before.wh) + (Fraction(after.wh) - Fraction(before.wh)) * share


def charging_end(session: Session) -> datetime:
    """When the car stopped charging for good: the end of the last interval between readings
    whose average power was at least IDLE_BELOW_W (the session's start if there is none).

    With no reading between the start and the stop, nothing tells when within the session the
    energy flowed: charging ends at the stop (a slow charge over the whole session is as likely
    as a fast one followed by idling, and idle fees are not billed on a guess)."""
    readings = session.readings
    if not session.running and len(readings) == 2:
        return min(max(readings[-1].at, session.started_at), session.until)
    end = session.started_at
    for before, after in itertools.pairwise(readings):
        seconds = _seconds(after.at - before.at)
        if seconds > 0 and (Fraction(after.wh) - Fraction(before.wh)) * 3600 / seconds \
                >= IDLE_BELOW_W:
            end = after.at
    if session.running and (len(readings) < 2 or end == readings[-1].at):
        return session.until  # still charging as far as anyone can tell
    return min(max(end, session.started_at), session.until)


def price_changes(start: datetime, end: datetime, terms: Terms) -> list[datetime]:
    """The instants within (start, end) where the applicable window may change (UTC). Found
    day by day, so the span is bounded (MAX_PRICED_SPAN): a charger's clock cannot make pricing
    walk centuries."""
    if end - start > MAX_PRICED_SPAN:
        raise ImplausibleSpan(
            f"the session spans {(end - start).days} days ({start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC), more than the {MAX_PRICED_SPAN.days} pricing accepts")
    if not terms.windows:
        return []
    try:
        return _price_changes(start, end, terms)
    except OverflowError:  # a day before year 1 or after 9999 in the site's zone
        raise ImplausibleSpan(f"the session's times ({start:%Y-%m-%d} to {end:%Y-%m-%d}) are "
                              "out of the calendar's range") from None


def _price_changes(start: datetime, end: datetime, terms: Terms) -> list[datetime]:
    zone = terms.zone
    edges = {time(0)} | {w.start for w in terms.windows} | {w.end for w in terms.windows}
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    instants = set()
    day = first
    while day <= last:
        for edge in edges:
            for fold in (0, 1):  # a repeated hour has two of each wall time
                local = datetime.combine(day, edge, tzinfo=zone).replace(fold=fold)
                instant = local.astimezone(UTC)
                if start < instant < end:
                    instants.add(instant)
        day += timedelta(days=1)
    points = sorted(instants | {start, end})
    # Where the offset changes (DST), the wall clock jumps: that instant is an edge too.
    for before, after in itertools.pairwise(points):
        if before.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            instants.add(_transition(before, after, zone))
    return sorted(instants)


def _transition(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    offset = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0) if high.microsecond else high


def compute(terms: Terms, session: Session) -> Cost:
    """Price a session; Unpriceable when it cannot be priced as it is."""
    readings = tuple(r for r in session.readings if session.started_at <= r.at <= session.until)
    if not readings and session.readings:
        readings = (session.readings[0],)
    check_readings(readings, session.max_power_w)
    session = Session(session.started_at, session.until, readings, session.released,
                      session.running, session.max_power_w)
    cuts = [session.started_at, *price_changes(session.started_at, session.until, terms),
            session.until]
    register = Register(readings)
    charged_until = charging_end(session)
    problems = []

    parts: dict[int | None, Part] = {}
    for a, b in itertools.pairwise(cuts):
        if b <= a:
            continue
        window = terms.window_at(a + (b - a) / 2)
        if window not in parts:
            parts[window] = Part(*terms.label_and_prices(window))
        part = parts[window]
        part.energy_wh += register.at(b) - register.at(a)
        overlap = min(b, charged_until) - a
        if overlap > timedelta(0):
            part.charging_seconds += _seconds(overlap)
    if len(parts) > 1:
        problems += _gaps_across_changes(readings, cuts, terms)

    energy = sum((p.energy_wh * Fraction(p.prices.per_kwh) / 1000 for p in parts.values()),
                 Fraction(0))
    minutes = sum((p.charging_seconds * Fraction(p.prices.per_minute) / 60
                   for p in parts.values()), Fraction(0))
    idle_end = session.released if session.released is not None else session.until
    idle = max(timedelta(0), idle_end - charged_until)
    if session.released is None:
        idle = min(idle, IDLE_LIMIT)  # still plugged in: provisional, never beyond the limit
    billable_idle = max(timedelta(0), idle - terms.idle_grace)
    idle_fee = _seconds(billable_idle) * Fraction(terms.idle_per_minute) / 60
    total_wh = Fraction(readings[-1].wh) - Fraction(readings[0].wh)
    empty = total_wh == 0 and not session.running and not terms.bills_empty_sessions

    energy_amount, time_amount = round_cents(energy), round_cents(minutes)
    idle_amount = round_cents(idle_fee)
    session_fee = round_cents(terms.session_fee)
    if empty:
        energy_amount = time_amount = idle_amount = session_fee = round_cents(Fraction(0))
    subtotal = energy_amount + time_amount + idle_amount + session_fee
    net = subtotal
    if terms.min_price is not None and net < terms.min_price and not empty:
        net = terms.min_price
    if terms.max_price is not None and net > terms.max_price:
        net = terms.max_price
    net = round_cents(net)
    vat = vat_of(net, terms.vat_rate)
    return Cost(
        energy_wh=Decimal(total_wh.numerator) / total_wh.denominator,
        charging_seconds=int(_seconds(charged_until - session.started_at)),
        idle_seconds=int(_seconds(idle)), billable_idle_seconds=int(_seconds(billable_idle)),
        energy_amount=energy_amount, time_amount=time_amount, idle_amount=idle_amount,
        session_fee=session_fee, cap_adjustment=round_cents(net - subtotal),
        net=net, vat_rate=terms.vat_rate, vat_amount=vat, gross=net + vat,
        parts=list(parts.values()), problems=problems, empty=empty,
    )


def _gaps_across_changes(readings: Sequence[Reading], cuts: Iterable[datetime],
                         terms: Terms) -> list[str]:
    """Readings so far apart, across a change of price, that the split is a guess. The cuts are
    in time order: the changes between two readings are found by bisection, so the work grows
    with the readings and the changes, not with their product."""
    changes = list(cuts)[1:-1]
    problems = []
    for before, after in itertools.pairwise(readings):
        if after.at - before.at <= MAX_READING_GAP or after.wh == before.wh:
            continue
        inside = changes[bisect.bisect_right(changes, before.at):
                         bisect.bisect_left(changes, after.at)]
        if inside and len({terms.label_and_prices(terms.window_at(moment))[1]
                           for moment in (before.at, after.at, *inside)}) > 1:
            problems.append(f"no meter reading between {before.at:%Y-%m-%d %H:%M} and "
                            f"{after.at:%H:%M} UTC, across a change of price")
    return problems
