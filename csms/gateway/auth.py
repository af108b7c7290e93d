"""Who may open a charger connection: station ids, security profiles, passwords, rate limits.

Every refusal is recorded (stations.models.RefusedConnection) with who, when and why. A charger
is never authenticated by a cookie, and a failed attempt never displaces a live connection (the
consumer announces a new connection only after it is admitted).
"""

import base64
import binascii
import re
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.cache import BaseCache, caches

from csms.proxies import from_trusted_proxy, header
from stations.models import STATION_ID_PATTERN, Station
from stations.services import presence, registration

STATION_ID_RE = re.compile(STATION_ID_PATTERN)


@dataclass
class Refusal(Exception):
    reason: str
    detail: str = ""


def basic_credentials(scope: dict) -> tuple[str, str] | None:
    scheme, _, encoded = header(scope, b"authorization").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


@cache
def _counter() -> BaseCache:
    """One cache client for the process. django.core.cache.cache is one per async context,
    which in the gateway is one per charger connection, each holding its own Redis connection:
    thousands of chargers would be thousands of Redis clients, up to Redis's own limit."""
    return caches.create_connection("default")


def _failures_key(address: str) -> str:
    return f"ocpp-auth-failures:{address}"


def rate_limited(address: str) -> bool:
    return (_counter().get(_failures_key(address)) or 0) >= settings.OCPP["AUTH_FAILURE_LIMIT"]


def forget_failures(address: str) -> None:
    """Lift an address's rate limit (an operator's decision, or a test's fresh start)."""
    _counter().delete(_failures_key(address))


def _count_failure(address: str) -> None:
    key = _failures_key(address)
    if _counter().add(key, 1, timeout=settings.OCPP["AUTH_FAILURE_WINDOW"]):
        return
    try:
        _counter().incr(key)
    except ValueError:  # expired between add and incr
        _counter().add(key, 1, timeout=settings.OCPP["AUTH_FAILURE_WINDOW"])


def refuse(station_id: str, address: str, reason: str, detail: str = "",
           failure: bool = False) -> Refusal:
    """Record a refusal (and, for a failed credential, count it against the address)."""
    presence.connection_refused(station_id, address, reason, detail)
    if failure:
        _count_failure(address)
    return Refusal(reason, detail)


def station_for(raw_id: str, address: str) -> Station:
    """Look up (or, with onboarding on, create pending) the station a connection names."""
    if rate_limited(address):
        raise refuse(raw_id, address, "rate_limited", "too many failed attempts")
    if not STATION_ID_RE.fullmatch(raw_id):
        raise refuse(raw_id, address, "invalid_id", "not an OCPP identifierString of ≤ 48")
    station = Station.objects.filter(pk=raw_id).first()
    if station is None:
        if not settings.OCPP["ONBOARDING"]:
            raise refuse(raw_id, address, "unknown_station", failure=True)
        station = registration.station_onboard(raw_id)
    if station.registration == Station.Registration.REJECTED:
        raise refuse(raw_id, address, "rejected", "an operator rejected this station")
    return station


def check_transport(station: Station, scope: dict, address: str) -> None:
    """Profiles 2 and 3 need TLS, which a proxy in front of us terminates and vouches for."""
    if station.security_profile < Station.SecurityProfile.TLS_BASIC:
        return
    if not from_trusted_proxy(scope) or header(scope, b"x-forwarded-proto") != "https":
        raise refuse(station.pk, address, "tls_required",
                     f"security profile {station.security_profile} needs TLS via a trusted proxy")
    if station.security_profile == Station.SecurityProfile.TLS_CLIENT_CERT:
        verified = header(scope, b"x-ssl-client-verify") == "SUCCESS"
        subject = header(scope, b"x-ssl-client-s-dn")
        common_name = dict(
            part.strip().split("=", 1) for part in subject.split(",") if "=" in part
        ).get("CN")
        if not verified or common_name != station.pk:
            # P2 A00.FR.403-408: close and log InvalidChargingStationCertificate.
            raise refuse(station.pk, address, "invalid_certificate",
                         "InvalidChargingStationCertificate", failure=True)


def needs_password(station: Station) -> bool:
    return station.security_profile in (Station.SecurityProfile.BASIC,
                                        Station.SecurityProfile.TLS_BASIC)


def check_credentials(station: Station, scope: dict, address: str) -> None:
    """Profile 1 and 2: Basic auth whose user is the station id and whose password matches."""
    credentials = basic_credentials(scope)
    if credentials is None:
        raise refuse(station.pk, address, "no_credentials", "HTTP Basic auth required",
                     failure=True)
    user, password = credentials
    if user != station.pk:
        raise refuse(station.pk, address, "wrong_username",
                     "Basic auth user is not the station id", failure=True)
    if not station.check_password(password):
        raise refuse(station.pk, address, "wrong_password", failure=True)
