"""Which stations are connected, and to which process: connections, refusals, and the sweep
that finds stations whose process died (csms/gateway/liveness.py runs it in every process)."""

import logging
import uuid
from datetime import timedelta

from django.utils import timezone

from stations import events, signals
from stations.models import RefusedConnection, Station, StationEvent
from stations.services import device

log = logging.getLogger(__name__)


def station_connected(station: Station, version: str) -> uuid.UUID:
    """The station is held by a new connection, which becomes the newest; returns its id, which
    its close (station_disconnected) and its process's presence (stations_present) name."""
    now = timezone.now()
    connection = uuid.uuid4()
    Station.objects.filter(pk=station.pk).update(
        connected=True, connected_at=now, last_seen=now, ocpp_version=version,
        connection=connection,
    )
    signals.station_connected.send(Station, station=station)
    events.publish("station.connected", station.pk, station.site_id)
    return connection


def station_disconnected(station_id: str, site_id: int | None, connection: uuid.UUID) -> bool:
    """A connection closed. The station goes offline only if it was the newest one: the old
    socket of a charger that reconnected may close after the new one was admitted, in this
    process or another. Returns whether the station went offline."""
    went_offline = Station.objects.filter(pk=station_id, connection=connection).update(
        connected=False, last_seen=timezone.now())
    if went_offline:
        events.publish("station.disconnected", station_id, site_id)
    return bool(went_offline)



def connection_refused(station_id: str, remote_addr: str, reason: str, detail: str = "") -> None:
    RefusedConnection.objects.create(
        station_id=station_id[:200], remote_addr=remote_addr[:64], reason=reason,
        detail=detail[:200],
    )
    # An alert on the overview: the operator's, and that of whoever sees the station's site.
    site_id = Station.objects.filter(pk=station_id).values_list("site_id", flat=True).first()
    events.publish("station.refused", station_id[:200], site_id, reason=reason)


def logins_blocked(station: Station, address: str, failures: int, seconds: int) -> None:
    """Too many failed logins for a station from one address: further attempts from there are
    refused for a while, which the station's security events show its operators."""
    device.station_event_record(station, StationEvent.Kind.SECURITY, "LoginsBlocked",
                                {"address": address, "failures": failures, "seconds": seconds})



def stations_present(connections: dict[str, uuid.UUID], stale_after: float) -> None:
    """A server process holds these stations' sockets now, by the connection ids
    station_connected gave them (csms/gateway/liveness.py).

    A station the sweep marked offline meanwhile (its process could not refresh it, e.g. while
    the database was down) is connected again, if this process still holds its newest
    connection; one that disconnected just now (last_seen fresh) is not: its socket closed
    while this list was being made.
    """
    now = timezone.now()
    revived = [(pk, site_id) for pk, site_id, connection in Station.objects.filter(
        pk__in=connections, connected=False, last_seen__lt=now - timedelta(seconds=stale_after),
    ).values_list("pk", "site_id", "connection") if connection == connections[pk]]
    if revived:
        Station.objects.filter(pk__in=[pk for pk, _ in revived]).update(connected=True)
        for pk, site_id in revived:
            events.publish("station.connected", pk, site_id)
    Station.objects.filter(pk__in=connections).update(last_seen=now)


def stations_sweep(stale_after: float) -> list[str]:
    """Stations marked connected that no live process has refreshed for `stale_after` seconds:
    their process died without running its disconnect handler. Marked offline."""
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    stale = Station.objects.filter(connected=True, last_seen__lt=cutoff)
    rows = list(stale.values_list("pk", "site_id"))
    if rows:
        stale.filter(pk__in=[pk for pk, _ in rows]).update(connected=False)
        log.warning("marked %d stations offline: no process holds them (e.g. %s)", len(rows),
                    rows[0][0])
        for pk, site_id in rows:
            events.publish("station.disconnected", pk, site_id)
    return [pk for pk, _ in rows]


