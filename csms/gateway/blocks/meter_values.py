"""Meter values (1.6 Core MeterValues; 2.0.1 J): readings of a connector, in a transaction or
not, in domain units (energy Wh, power W: kilo- prefixes and multipliers folded). The sampled
values of transaction messages are read here too (csms/gateway/blocks/transactions.py)."""

from datetime import datetime
from decimal import Decimal

from ocpp.v16.enums import Action as V16
from ocpp.v16.enums import ValueFormat
from ocpp.v201.enums import Action as V201

from csms.gateway.frames import FrameError, event_time
from csms.gateway.table import TABLE, Context, Version
from stations.records import ENERGY_REGISTER, Sample
from stations.services import batch

_KILO = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}
# Powers of ten of a reading past which it is infinite, or nothing, to the domain: its columns
# hold 10^15 at most and four decimals.
_LARGEST_MAGNITUDE = 30


def to_domain(value: object, unit: str, multiplier: int = 0) -> tuple[Decimal, str]:
    """A reading in the domain's unit: a kilo-unit's value times 1,000, then 10^multiplier."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:  # not a number
        raise FrameError("property", "Meter value is not a number") from None
    if not number.is_finite():
        raise FrameError("property", "Meter value is not a finite number")
    if unit in _KILO:
        multiplier, unit = multiplier + 3, _KILO[unit]
    if not number:
        return number, unit
    magnitude = number.adjusted() + multiplier
    if magnitude > _LARGEST_MAGNITUDE:
        # Beyond any meter (and beyond what the decimal context holds): the domain stores it
        # nowhere but the message log, and marks the session for review.
        return Decimal("Infinity").copy_sign(number), unit
    if magnitude < -_LARGEST_MAGNITUDE:
        return Decimal(0).copy_sign(number), unit  # below every column's resolution
    return number.scaleb(multiplier), unit


def _sample(timestamp: datetime, sampled: dict, value: Decimal, unit: str) -> Sample:
    """A sampled value's reading and what it measured, where (phase, location) and why
    (context): the same keys in both versions."""
    return Sample(timestamp=timestamp, value=value, unit=unit,
                  measurand=sampled.get("measurand", ENERGY_REGISTER),
                  phase=sampled.get("phase", ""), location=sampled.get("location", ""),
                  context=sampled.get("context", ""))


def samples_16(meter_values: list[dict]) -> list[Sample]:
    samples = []
    for meter_value in meter_values:
        timestamp = event_time(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            if sampled.get("format") == ValueFormat.signed_data:
                continue  # a signed blob, not a number; kept in the message log
            samples.append(_sample(timestamp, sampled,
                                   *to_domain(sampled["value"], sampled.get("unit", "Wh"))))
    return samples


def samples_201(meter_values: list[dict]) -> list[Sample]:
    samples = []
    for meter_value in meter_values:
        timestamp = event_time(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            unit_of_measure = sampled.get("unitOfMeasure", {})
            samples.append(_sample(timestamp, sampled, *to_domain(
                sampled["value"], unit_of_measure.get("unit", "Wh"),
                unit_of_measure.get("multiplier", 0))))
    return samples


@TABLE.handles(Version.V16, V16.meter_values)
def meter_values_16(ctx: Context, payload: dict) -> dict:
    transaction_id = payload.get("transactionId")
    batch.meter_values_record(
        ctx.station, evse=payload["connectorId"],
        transaction_id=str(transaction_id) if transaction_id is not None else None,
        samples=samples_16(payload["meterValue"]), batch=ctx.batch,
    )
    return {}


@TABLE.handles(Version.V201, V201.meter_values)
def meter_values_201(ctx: Context, payload: dict) -> dict:
    batch.meter_values_record(ctx.station, evse=payload["evseId"], transaction_id=None,
                              samples=samples_201(payload["meterValue"]), batch=ctx.batch)
    return {}


TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
