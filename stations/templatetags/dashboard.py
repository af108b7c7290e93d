"""Formatting for the dashboard: times in the site's zone, energy and power in readable units."""

import json
from datetime import datetime
from decimal import Decimal

from django import template
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts import card_use
from accounts.audit import mask
from accounts.models import Site
from stations.web import fragments

register = template.Library()

NOTHING = "—"


def _time(value: datetime | None, where: Site | str | None, fmt: str) -> SafeString | str:
    if not isinstance(value, datetime):
        return NOTHING
    local = timezone.localtime(value, fragments.zone(where))
    return format_html('<time datetime="{}">{}</time>', value.isoformat(),
                       dateformat.format(local, fmt))


def _viewer(context: template.Context) -> AbstractBaseUser:
    """Who the page is for: the request's user, or a live socket's (its fragments have no
    request); nobody (who sees no card number) if neither is known."""
    viewer = context.get("viewer")
    if viewer is None:
        request = context.get("request")
        viewer = request.user if request is not None else AnonymousUser()
    return viewer


@register.simple_tag(takes_context=True)
def card_number(context: template.Context, tx) -> str:
    """A session's card number as the page's viewer may see it (accounts.card_use.shown)."""
    return card_use.shown(_viewer(context), tx.id_token_value,
                          tx.id_token if tx.id_token_id else None) or "—"


@register.simple_tag(takes_context=True)
def payload_shown(context: template.Context, payload, hidden: set[str] | str = "") -> str:
    """A frame's payload, pretty, as the viewer may see it: numbers of cards the viewer does not
    see are masked. `hidden`: those of a whole page's frames, read at once
    (stations.services.message_log.hidden_cards); else this payload's are read."""
    if not isinstance(hidden, set):  # not given: a missing variable renders as "", not None
        hidden = card_use.hidden_values(_viewer(context), card_use.strings_in(payload))
    return pretty_json(card_use.mask_in(payload, hidden))


@register.filter
def when(value: datetime | None, where: Site | str | None = None) -> SafeString | str:
    """A time in the site's zone (or a zone name), with the zone's abbreviation."""
    return _time(value, where, "Y-m-d H:i T")


@register.filter
def when_exact(value: datetime | None, where: Site | str | None = None) -> SafeString | str:
    """To the second, for message logs and call outcomes."""
    return _time(value, where, "Y-m-d H:i:s T")


@register.filter
def kwh(wh: Decimal | float | None) -> str:
    """Wh as kWh: three decimals below 10 kWh (a meter's resolution), fewer above."""
    if wh is None:
        return NOTHING
    value = float(wh) / 1000
    digits = 3 if abs(value) < 10 else 2 if abs(value) < 1000 else 0
    return f"{value:,.{digits}f} kWh"


@register.filter
def kw(watts: Decimal | float | None) -> str:
    if watts is None:
        return NOTHING
    return f"{float(watts) / 1000:,.1f} kW"


@register.filter
def energy(tx) -> str:
    return kwh(fragments.session_energy_wh(tx))


@register.filter
def duration(start: datetime | None, end: datetime | None = None) -> str:
    """From start to end (or to now, for a session still running): "2 h 05 min"."""
    if not isinstance(start, datetime):
        return NOTHING
    minutes = int(((end or timezone.now()) - start).total_seconds() // 60)
    if minutes < 0:
        return NOTHING
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


@register.filter
def state_class(status: str) -> str:
    """The badge style of a status; the badge always says the status in words too."""
    return {
        "Available": "ok", "Occupied": "busy", "Charging": "busy", "Reserved": "info",
        "Faulted": "bad", "Unavailable": "muted", "Unknown": "muted",
        "accepted": "ok", "rejected": "bad", "error": "bad", "timeout": "bad",
        "not_connected": "muted", "pending": "info", "sent": "info",
        "active": "busy", "completed": "ok",
    }.get(status, "muted")


@register.filter
def masked(value: object) -> object:
    """Secrets in a payload (a charger's new password) masked, as the audit log has them."""
    return mask(value)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
