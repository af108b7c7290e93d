"""Who a station is and whether it may charge: its boot, its onboarding when it connects unknown,
an operator's decision on its registration, and changes of its credentials (audited)."""

from contextlib import suppress
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.transaction import atomic
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, Site
from stations import events
from stations.models import Station, StationEvent
from stations.passwords import charger_password_generate
from stations.services import commands, device


def station_onboard(station_id: str) -> Station:
    """An unknown station allowed to connect: created pending until an operator accepts it."""
    station, _ = Station.objects.get_or_create(
        pk=station_id,
        defaults={"registration": Station.Registration.PENDING,
                  "security_profile": Station.SecurityProfile.NONE},
    )
    return station


def boot_record(station: Station, *, vendor: str, model: str, serial_number: str = "",
                firmware_version: str = "", reason: str = "") -> str:
    """A station (re)booted: remember what it is; answer with its registration state."""
    station.refresh_from_db(fields=["registration", "site"])
    now = timezone.now()
    Station.objects.filter(pk=station.pk).update(
        vendor=vendor, model=model, serial_number=serial_number,
        firmware_version=firmware_version, last_boot_at=now, last_seen=now,
    )
    device.station_event_record(station, StationEvent.Kind.MONITORING, "Boot",
                         {"reason": reason, "firmware": firmware_version}, now)
    events.publish("station.booted", station.pk, station.site_id)
    return station.registration


@dataclass(frozen=True, slots=True)
class Decision:
    """What came of a person's decision on a station's registration."""

    decided: bool
    # The password generated for a station accepted without credentials: for the person who
    # accepted it to see once (only its hash is kept).
    password: str = field(default="", repr=False)


def station_registration_decide(station: Station, registration: str, *,
                                user: AbstractBaseUser, site: Site | None = None,
                                was: str | None = None,
                                unauthenticated: bool = False) -> Decision:
    """A person accepts or rejects a station (or changes their mind), optionally placing it on
    a site: stored, audited and announced (the pending count and the station's pages follow).

    Counted once: of two people deciding at once only the first changes anything, and with
    `was` (the registration the person saw) only a station still in that state changes.
    A connected station's socket follows at once: its consumer takes the new registration, and
    closes the socket if it is Rejected (the station's next connection is refused). The station
    itself learns it at its next BootNotification: a pending one sends it again after the
    interval its last boot answer gave it (settings.OCPP["HEARTBEAT_INTERVAL"]).

    A station accepted with no credentials (an onboarded one: security profile 0) gets a
    generated password at once, sent to it in its version's configuration message: anyone
    could otherwise connect in its name. Only `unauthenticated`, a person's explicit choice,
    leaves it at profile 0.
    """
    if registration not in Station.Registration.values:
        raise ValueError(f"{registration!r} is not a registration state")
    password = ""
    with atomic():
        before = (Station.objects.select_for_update().filter(pk=station.pk)
                  .values_list("registration", flat=True).first())
        if before is None or before == registration or was not in (None, before):
            return Decision(False)
        changes = {"registration": registration, **({"site": site} if site else {})}
        # Compared again in the update: SQLite has no row locks, this is its guard.
        if not Station.objects.filter(pk=station.pk, registration=before).update(**changes):
            return Decision(False)
        station.registration = registration
        if site is not None:
            station.site = site
        label = Station.Registration(registration).label.lower()
        audit.record(user, AuditEntry.Action.STATION_REGISTRATION,
                     f"{label} station {station.pk}"
                     + (f" at {station.site.name}" if station.site else ""),
                     target=f"station:{station.pk}",
                     details={"registration": [before, registration], "site": station.site_id,
                              # a person's explicit choice of no credentials, on the record
                              **({"unauthenticated": True} if unauthenticated else {})})
        events.publish("station.registration", station.pk, station.site_id,
                       registration=registration)
        events.to_charger(station.pk, {"type": "ocpp.registration",
                                       "registration": registration})
        if (registration == Station.Registration.ACCEPTED and not unauthenticated
                and station.security_profile == Station.SecurityProfile.NONE):
            password = station_password_issue(station, user)
    return Decision(True, password)


def station_password_issue(station: Station, user: AbstractBaseUser) -> str:
    """Give a station a new generated password (security profile 1) and send it to the station;
    returns it, for the person to see once (and type into the charger if the station cannot be
    told: it is not connected, or refuses)."""
    password = charger_password_generate()
    station.set_password(password)
    station.password_hash_next = ""
    station.security_profile = max(station.security_profile, Station.SecurityProfile.BASIC)
    with atomic():
        station.save(update_fields=["password_hash", "password_hash_next", "security_profile"])
        station_credentials_changed(user, station, "password generated")
        # A station that never connected has no known version to say it in: it gets none.
        with suppress(commands.CommandError):
            commands.send_later(station, commands.PasswordChange(password), user=user)
    return password


def station_password_adopt(station: Station, raw: str) -> None:
    """The station accepted a new password: valid from now on. Its current one stays valid
    until the station first logs in with the new one (station_password_confirm), since many
    chargers apply a new password only when they next connect."""
    station.refresh_from_db(fields=["password_hash", "password_hash_next", "security_profile"])
    if station.check_password(raw):  # the one it has (a generated one, sent after approval)
        return
    hashed = Station(pk=station.pk)
    hashed.set_password(raw)
    if station.password_hash:
        station.password_hash_next = hashed.password_hash
        Station.objects.filter(pk=station.pk).update(password_hash_next=hashed.password_hash)
    else:
        station.password_hash = hashed.password_hash
        Station.objects.filter(pk=station.pk).update(password_hash=hashed.password_hash)
    station_credentials_changed(None, station, "new password accepted by the station")


def station_password_confirm(station: Station) -> None:
    """The station logged in with the new password it accepted: the old one stops working."""
    if Station.objects.filter(pk=station.pk, password_hash_next=station.password_hash_next).update(
            password_hash=station.password_hash_next, password_hash_next=""):
        station.password_hash, station.password_hash_next = station.password_hash_next, ""
        station_credentials_changed(None, station, "old password retired")


def station_credentials_changed(actor: AbstractBaseUser | None, station: Station,
                                what: str) -> None:
    """A station's password (or security profile) was set: who and when, never the secret."""
    audit.record(actor, AuditEntry.Action.STATION_CREDENTIALS, f"{what} of station {station.pk}",
                 target=f"station:{station.pk}",
                 details={"security_profile": station.security_profile})
