"""Who a station is and whether it may charge: its boot, its onboarding when it connects unknown,
an operator's decision on its registration, and changes of its credentials (audited)."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.transaction import atomic
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, Site
from stations import events
from stations.models import Station, StationEvent
from stations.services import device


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


def station_registration_decide(station: Station, registration: str, *,
                                user: AbstractBaseUser, site: Site | None = None,
                                was: str | None = None) -> bool:
    """A person accepts or rejects a station (or changes their mind), optionally placing it on
    a site: stored, audited and announced (the pending count and the station's pages follow).

    Counted once: of two people deciding at once only the first changes anything, and with
    `was` (the registration the person saw) only a station still in that state changes.
    Returns whether this call decided. A connected station's socket follows at once: its
    consumer takes the new registration, and closes the socket if it is Rejected (the station's
    next connection is refused). The station itself learns it at its next BootNotification: a
    pending one sends it again after the interval its last boot answer gave it
    (settings.OCPP["HEARTBEAT_INTERVAL"]).
    """
    if registration not in Station.Registration.values:
        raise ValueError(f"{registration!r} is not a registration state")
    with atomic():
        before = (Station.objects.select_for_update().filter(pk=station.pk)
                  .values_list("registration", flat=True).first())
        if before is None or before == registration or was not in (None, before):
            return False
        changes = {"registration": registration, **({"site": site} if site else {})}
        # Compared again in the update: SQLite has no row locks, this is its guard.
        if not Station.objects.filter(pk=station.pk, registration=before).update(**changes):
            return False
        station.registration = registration
        if site is not None:
            station.site = site
        label = Station.Registration(registration).label.lower()
        audit.record(user, AuditEntry.Action.STATION_REGISTRATION,
                     f"{label} station {station.pk}"
                     + (f" at {station.site.name}" if station.site else ""),
                     target=f"station:{station.pk}",
                     details={"registration": [before, registration],
                              "site": station.site_id})
        events.publish("station.registration", station.pk, station.site_id,
                       registration=registration)
        events.to_charger(station.pk, {"type": "ocpp.registration",
                                       "registration": registration})
    return True



def station_credentials_changed(actor: AbstractBaseUser, station: Station, what: str) -> None:
    """A station's password (or security profile) was set: who and when, never the secret."""
    audit.record(actor, AuditEntry.Action.STATION_CREDENTIALS, f"{what} of station {station.pk}",
                 target=f"station:{station.pk}",
                 details={"security_profile": station.security_profile})
