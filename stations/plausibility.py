"""What a charger's reading can plausibly be, per measurand and per EVSE.

A reading can be valid JSON and valid per schema and still be absurd for the domain: an energy
register of 10^13 Wh, a negative one, power of gigawatts, a register that rises faster than the
EVSE can deliver. Such a reading is stored as the charger said it and its session is marked for
review (Transaction.needs_review) instead of being priced; the frame itself stays in the
message log. A number beyond STORABLE_LIMIT is not stored in a numeric column at all: the
message log keeps it, and the session says so.

Every check here is arithmetic on what the caller holds already (no query): they run on the
meter-values path for every sample.
"""

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from stations.records import ENERGY_REGISTER, Sample

# The largest magnitude stored in a numeric column: the transaction's meter columns hold 10^15
# (Transaction.meter_start_wh), so the difference of two readings fits too.
STORABLE_LIMIT = Decimal(10) ** 14
# No meter register counts more than this (100 GWh: a 350 kW EVSE running for thirty years).
MAX_REGISTER_WH = Decimal(10) ** 11
# Meters read a little above an EVSE's rated power (tolerance, a rating set a little low).
POWER_TOLERANCE = Decimal("1.25")
# A register that counts whole kWh steps by 1,000 Wh at once: a rise of that much between two
# readings close together is its resolution, not power.
REGISTER_STEP_WH = Decimal(1000)

# Bounds of measurands that do not depend on the EVSE, in domain units, by measurand prefix;
# Power.Factor before Power (which is the EVSE's power).
_FIXED: tuple[tuple[str, Decimal, Decimal, str], ...] = (
    ("Energy.", Decimal(0), MAX_REGISTER_WH, "Wh"),
    ("Power.Factor", Decimal(-1), Decimal(1), ""),
    ("Current.", Decimal(-3000), Decimal(3000), "A"),
    ("Voltage", Decimal(0), Decimal(1500), "V"),
    ("SoC", Decimal(0), Decimal(100), "%"),
    ("Frequency", Decimal(0), Decimal(1000), "Hz"),
    ("Temperature", Decimal(-100), Decimal(200), "°C"),
    ("RPM", Decimal(0), Decimal(100_000), "rpm"),
)
_POWER = "Power."


@lru_cache(maxsize=64)
def _bounds(measurand: str) -> tuple[Decimal, Decimal, str] | None:
    """(low, high, unit) of a measurand independent of the EVSE; None for power (the EVSE's)
    and for measurands we know no bound of (a vendor's own)."""
    for prefix, low, high, unit in _FIXED:
        if measurand.startswith(prefix):
            return low, high, unit
    return None


def storable(value: Decimal) -> bool:
    return abs(value) < STORABLE_LIMIT


def _kw(watts: Decimal) -> str:
    return f"{watts / 1000:,.0f} kW" if abs(watts) >= 10_000 else f"{watts / 1000:,.1f} kW"


def _number(value: Decimal) -> str:
    """A reading as a person reads it: grouped digits, at most three decimals."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _utc(moment: datetime) -> str:
    """Chargers give their own offsets; a person compares the notes of many in UTC."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _at(sample: Sample) -> str:
    return _utc(sample.timestamp)


def reading_problem(sample: Sample, max_power_w: int) -> str | None:
    """Why the sample cannot be what its measurand measured at an EVSE of `max_power_w`, or
    None when it can."""
    value = sample.value
    if not storable(value):
        return (f"{sample.measurand} reading beyond any meter's range at {_at(sample)}: kept in "
                "the message log only")
    if sample.measurand.startswith(_POWER) and not sample.measurand.startswith("Power.Factor"):
        limit = max_power_w * POWER_TOLERANCE
        if abs(value) > limit:
            return (f"{sample.measurand} of {_kw(value)} at {_at(sample)} is above the EVSE's "
                    f"maximum of {_kw(Decimal(max_power_w))}")
        return None
    bounds = _bounds(sample.measurand)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        low, high, unit = bounds
        return (f"{sample.measurand} of {_number(value)} {unit} at {_at(sample)} is outside "
                f"{_number(low)} to {_number(high)} {unit}")
    return None


def screen(samples: list[Sample], max_power_w: int | None) -> tuple[list[Sample], str | None]:
    """The samples that can be stored, and the first implausible one's problem (None if all
    are plausible). Without an EVSE's maximum (readings of no session) only what cannot be
    stored is left out."""
    problem = None
    if max_power_w is not None:
        for sample in samples:
            if (problem := reading_problem(sample, max_power_w)) is not None:
                break
    if all(storable(sample.value) for sample in samples):
        return samples, problem
    return [sample for sample in samples if storable(sample.value)], problem


def session_samples(samples: list[Sample], max_power_w: int,
                    start: tuple[datetime, Decimal | None]) -> tuple[list[Sample], str | None]:
    """A session's samples as screen() keeps them, and the first problem: an implausible
    reading, or the energy register's rise from the session's `start` (moment, Wh), if known,
    to its last whole-station reading among them."""
    kept, problem = screen(samples, max_power_w)
    start_at, start_wh = start
    if problem is None and start_wh is not None:
        register = [s for s in kept if s.measurand == ENERGY_REGISTER and not s.phase]
        if register:
            problem = rise_problem((start_at, start_wh),
                                   (register[-1].timestamp, register[-1].value), max_power_w)
    return kept, problem


def register_problem(value: Decimal) -> str | None:
    """Why an energy register reading (a session's start or stop) is implausible, or None."""
    if not storable(value):
        return ("energy register reading beyond any meter's range: kept in the message log "
                "only")
    if not 0 <= value <= MAX_REGISTER_WH:
        return (f"energy register reading of {_number(value)} Wh is outside 0 to "
                f"{_number(MAX_REGISTER_WH)} Wh")
    return None


def rise_problem(before: tuple[datetime, Decimal], after: tuple[datetime, Decimal],
                 max_power_w: int) -> str | None:
    """Why the energy register cannot have gone from `before` to `after` (moment, Wh) at an
    EVSE of `max_power_w`: it went backwards, or rose faster than the EVSE delivers."""
    (start, start_wh), (end, end_wh) = before, after
    if end < start:
        (start, start_wh), (end, end_wh) = after, before
    rise = end_wh - start_wh
    if rise < 0:
        return (f"energy register went backwards at {_utc(end)} "
                f"({_number(start_wh)} → {_number(end_wh)} Wh)")
    seconds = Decimal((end - start).total_seconds())
    if rise <= max_power_w * POWER_TOLERANCE * seconds / 3600 + REGISTER_STEP_WH:
        return None
    if seconds == 0:
        return f"energy register rose {_number(rise)} Wh at once at {_utc(end)}"
    average = rise * 3600 / seconds
    return (f"energy register rose {_number(rise)} Wh in {_duration(seconds)} up to "
            f"{_utc(end)}: {_kw(average)} on average, above the EVSE's maximum of "
            f"{_kw(Decimal(max_power_w))}")


def _duration(seconds: Decimal) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def readings_problem(readings: Sequence[tuple[datetime, Decimal]],
                     max_power_w: int) -> str | None:
    """Why a session's energy register readings (moment, Wh; sorted by moment) cannot be
    priced as they are, or None: a reading out of range, or a rise faster than the EVSE."""
    for _, wh in readings:
        if (problem := register_problem(wh)) is not None:
            return problem
    for before, after in itertools.pairwise(readings):
        if after[1] >= before[1] and (problem := rise_problem(before, after, max_power_w)):
            return problem  # a register going backwards is pricing's own check
    return None


def flag(note: str, problem: str, limit: int = 200) -> str:
    """A review note that says `problem` too, after what it said already: the first problems
    are kept whole (the later ones are alike, and the samples and the message log have them)."""
    if not note:
        return problem[:limit]
    if problem in note:
        return note
    longer = f"{note}; {problem}"
    return longer if len(longer) <= limit else note

