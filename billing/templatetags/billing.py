"""Template helpers of billing: money, durations, local times, and the running cost of a session
that the dashboard's session page includes: `{% load billing %}{% session_cost tx %}`."""

import contextlib
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import template

from billing import services
from billing.models import SessionCost
from stations.models import Transaction

register = template.Library()


@register.filter
def money(value: Decimal | None, currency: str = "EUR") -> str:
    """1234.5 → "1,234.50 EUR"; negative amounts keep their sign."""
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):,.2f} {currency}"


@register.filter
def minutes(seconds: int | None) -> str:
    if not seconds:
        return "0 min"
    hours, rest = divmod(int(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


@register.filter
def local(moment: datetime | None, zone: str) -> str:
    """A moment on the wall clock of a site (its zone's abbreviation shown)."""
    if moment is None:
        return "—"
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
        moment = moment.astimezone(ZoneInfo(zone or "UTC"))
    return moment.strftime("%Y-%m-%d %H:%M %Z")


@register.filter
def kwh(wh: Decimal | None) -> str:
    if wh is None:
        return "—"
    return f"{Decimal(wh) / 1000:,.3f} kWh"


@register.inclusion_tag("billing/fragments/session_cost.html")
def session_cost(tx: Transaction) -> dict:
    """The cost of a session: live while it runs (computed now, not stored), stored after."""
    cost = SessionCost.objects.filter(transaction=tx).select_related(
        "tariff_version__tariff").first()
    live = services.live_cost(tx) if tx.state == Transaction.State.ACTIVE else None
    return {"tx": tx, "cost": cost, "live": live,
            "currency": cost.currency if cost else "EUR"}
