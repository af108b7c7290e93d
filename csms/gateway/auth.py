"""Who may open a charger connection: station ids, security profiles, passwords, rate limits.

Every refusal is recorded (stations.models.RefusedConnection) with who, when and why. A charger
is never authenticated by a cookie, and a failed attempt never displaces a live connection (the
consumer announces a new connection only after it is admitted).
"""

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.utils.crypto import constant_time_compare, salted_hmac

from csms.proxies import from_trusted_proxy, header
from stations.models import STATION_ID_PATTERN, Station
from stations.services import presence, registration

STATION_ID_RE = re.compile(STATION_ID_PATTERN)
# How long a login that worked is remembered as good (past the failure limit it still works).
KNOWN_GOOD_DAYS = 30

log = logging.getLogger(__name__)


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


# Failed logins are counted per address and station: chargers of one site behind NAT share an
# address, and one misconfigured (or attacked) station must not shut out its neighbours. Ids
# no station has are counted per address under this name.
UNKNOWN = ""


def _failures_key(address: str, station_id: str) -> str:
    return f"ocpp-auth-failures:{address}:{station_id}"


def rate_limited(address: str, station_id: str) -> bool:
    failures = _counter().get(_failures_key(address, station_id)) or 0
    return failures >= settings.OCPP["AUTH_FAILURE_LIMIT"]


def forget_failures(address: str, station_id: str) -> None:
    """Lift a station's rate limit at an address (an operator's decision, a test's fresh
    start)."""
    _counter().delete(_failures_key(address, station_id))


def _count(key: str, window: int) -> int:
    """Add one to a counter that lives `window` seconds from its first count; the new count."""
    if _counter().add(key, 1, timeout=window):
        return 1
    try:
        return _counter().incr(key)
    except ValueError:  # expired between add and incr
        _counter().add(key, 1, timeout=window)
        return 1


def _count_failure(station: Station | None, station_id: str, address: str) -> None:
    failures = _count(_failures_key(address, station_id), settings.OCPP["AUTH_FAILURE_WINDOW"])
    if failures == settings.OCPP["AUTH_FAILURE_LIMIT"]:
        # Once per window, when the limit is reached: the station's security events say who is
        # knocking, without one row per refused attempt.
        log.warning("charger logins for %s from %s blocked for %s s after %s failures",
                    station_id[:60] or "unknown ids", address,
                    settings.OCPP["AUTH_FAILURE_WINDOW"], failures)
        if station is not None:
            presence.logins_blocked(station, address, failures,
                                    settings.OCPP["AUTH_FAILURE_WINDOW"])


def refuse(station_id: str, address: str, reason: str, detail: str = "",
           failure: bool = False, station: Station | None = None) -> Refusal:
    """Record a refusal (and, for a failed credential, count it against the address and the
    station, or the address alone for an id no station has)."""
    presence.connection_refused(station_id, address, reason, detail)
    if failure:
        _count_failure(station, station.pk if station is not None else UNKNOWN, address)
    return Refusal(reason, detail)


def _fingerprint(station: Station, credentials: tuple[str, str]) -> str:
    """Stands for credentials that matched the station's current password hash: it changes
    when the password does, and holds no secret a cache reader could use."""
    user, password = credentials
    return salted_hmac("ocpp-known-good-login",
                       f"{station.password_hash}\0{user}\0{password}").hexdigest()


def _known_good_key(station: Station) -> str:
    return f"ocpp-auth-good:{station.pk}"


def _known_good(station: Station, credentials: tuple[str, str]) -> bool:
    remembered = _counter().get(_known_good_key(station))
    return remembered is not None and constant_time_compare(
        remembered, _fingerprint(station, credentials))


def station_for(raw_id: str, address: str) -> Station:
    """Look up (or, with onboarding on, create pending) the station a connection names."""
    if not STATION_ID_RE.fullmatch(raw_id):
        raise refuse(raw_id, address, "invalid_id", "not an OCPP identifierString of ≤ 48")
    station = Station.objects.filter(pk=raw_id).first()
    if station is None:
        if rate_limited(address, UNKNOWN):
            raise refuse(raw_id, address, "rate_limited", "too many unknown station ids")
        if not settings.OCPP["ONBOARDING"]:
            raise refuse(raw_id, address, "unknown_station", failure=True)
        station = _onboard(raw_id, address)
    if station.registration == Station.Registration.REJECTED:
        raise refuse(raw_id, address, "rejected", "an operator rejected this station")
    if not needs_password(station) and rate_limited(address, station.pk):
        raise refuse(raw_id, address, "rate_limited", "too many failed attempts")
    return station


def _onboard(station_id: str, address: str) -> Station:
    """A new pending station, at most ONBOARDING_LIMIT per address and window: each one is an
    entry in the operators' pending list, which one address must not flood."""
    key = f"ocpp-onboarded:{address}"
    if (_counter().get(key) or 0) >= settings.OCPP["ONBOARDING_LIMIT"]:
        raise refuse(station_id, address, "rate_limited", "too many new stations from here")
    _count(key, settings.OCPP["ONBOARDING_WINDOW"])
    return registration.station_onboard(station_id)


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
                         "InvalidChargingStationCertificate", failure=True, station=station)


def needs_password(station: Station) -> bool:
    return station.security_profile in (Station.SecurityProfile.BASIC,
                                        Station.SecurityProfile.TLS_BASIC)


def check_credentials(station: Station, scope: dict, address: str) -> bool:
    """Profile 1 and 2: Basic auth whose user is the station id and whose password matches.

    Returns whether the charger logged in with the new password it accepted (not yet its
    current one): registration.station_password_confirm then retires the old. Past the failure
    limit only credentials that logged in before still do: the charger that belongs at this
    address keeps working while a guesser there is refused without a hash computed.
    """
    credentials = basic_credentials(scope)
    if rate_limited(address, station.pk):
        if credentials is not None and _known_good(station, credentials):
            return False
        raise refuse(station.pk, address, "rate_limited", "too many failed attempts")
    if credentials is None:
        raise refuse(station.pk, address, "no_credentials", "HTTP Basic auth required",
                     failure=True, station=station)
    user, password = credentials
    if user != station.pk:
        raise refuse(station.pk, address, "wrong_username",
                     "Basic auth user is not the station id", failure=True, station=station)
    if station.check_password(password):
        _counter().set(_known_good_key(station), _fingerprint(station, credentials),
                       timeout=KNOWN_GOOD_DAYS * 86400)
        return False
    if station.check_next_password(password):
        return True
    raise refuse(station.pk, address, "wrong_password", failure=True, station=station)


# Refusals the charger can cure with other credentials: HTTP 401 with a Basic challenge (2.0.1
# A00.FR.2xx, the 1.6 Security Whitepaper). Every other refusal is the server's HTTP 403.
UNAUTHORIZED = frozenset({"no_credentials", "wrong_username", "wrong_password"})


def denial(refusal: Refusal, scope: dict) -> list[dict]:
    """The ASGI messages that answer a refused handshake with 401, where the server can send an
    HTTP answer to a WebSocket request (uvicorn can, daphne cannot: it answers 403). Empty when
    closing (403) is the answer."""
    if (refusal.reason not in UNAUTHORIZED
            or "websocket.http.response" not in scope.get("extensions", {})):
        return []
    return [{"type": "websocket.http.response.start", "status": 401,
             "headers": [(b"www-authenticate", b'Basic realm="OCPP", charset="UTF-8"'),
                         (b"content-type", b"text/plain")]},
            {"type": "websocket.http.response.body", "body": b"Unauthorized"}]
