"""Meter readings into domain units: energy Wh, power W (kilo- prefixes and multipliers folded)."""

from decimal import Decimal, InvalidOperation

from csms.gateway.frames import FrameError

_KILO = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}


def to_domain(value: object, unit: str, multiplier: int = 0) -> tuple[Decimal, str]:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise FrameError("property", f"Meter value is not a number: {str(value)[:40]}") from None
    if not number.is_finite():
        raise FrameError("property", "Meter value is not a finite number")
    if unit in _KILO:
        number, unit = number * 1000, _KILO[unit]
    return number.scaleb(multiplier), unit
