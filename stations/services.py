"""The only writers of the charging domain. Version-neutral: the gateway's adapters translate
OCPP 1.6 and 2.0.1 messages into these calls, and views and the API call them too.

Callers run them inside `transaction.atomic()` (the gateway wraps each charger message in one),
so a charger's message is stored whole or not at all, and events go out only after commit.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import F, Q
from django.db.transaction import atomic
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, IdToken, Organization
from stations import bulk, events, signals
from stations.bulk import Batch
from stations.models import (
    Connector,
    DeviceVariable,
    Evse,
    MessageLog,
    MeterSample,
    RefusedConnection,
    Site,
    Station,
    StationEvent,
    Transaction,
    TransactionMessage,
)

ENERGY_REGISTER = bulk.ENERGY_REGISTER
# Stop reason of a transaction closed by transactions_close_abandoned, not by its charger.
CLOSED_BY_CSMS = "ClosedByCsms"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sample:
    """A meter reading in domain units: energy in Wh, power in W, current A, voltage V, SoC %."""

    timestamp: datetime
    value: Decimal
    measurand: str = ENERGY_REGISTER
    unit: str = "Wh"
    phase: str = ""
    location: str = ""
    context: str = ""


# A token limited to other sites than the station's (each adapter says it in its own words).
NOT_AT_THIS_SITE = "NotAtThisSite"


@dataclass(frozen=True, slots=True)
class Authorization:
    status: str  # IdToken.Status values, "ConcurrentTx" or NOT_AT_THIS_SITE
    expires_at: datetime | None = None
    group: str = ""
    token: IdToken | None = None  # the card, with its organization; None: unknown


@dataclass(slots=True)
class TransactionReport:
    """What a charger says in one transaction message, whichever version it speaks."""

    kind: str  # TransactionMessage.Kind
    timestamp: datetime
    transaction_id: str | None = None  # None: a start for which we assign the id
    sequence: int | None = None
    start_key: str | None = None
    evse: int | None = None
    connector: int | None = None
    id_token: str | None = None
    meter_wh: Decimal | None = None  # start register on start, stop register on end
    # The card of id_token when the adapter has it already (authorize's): not looked up again.
    token: IdToken | None = None
    stop_reason: str = ""
    trigger: str = ""
    offline: bool = False
    samples: list[Sample] = field(default_factory=list)


# --- connection and boot ----------------------------------------------------------------------

def station_connected(station: Station, version: str) -> None:
    now = timezone.now()
    Station.objects.filter(pk=station.pk).update(
        connected=True, connected_at=now, last_seen=now, ocpp_version=version
    )
    signals.station_connected.send(Station, station=station)
    events.publish("station.connected", station.pk, station.site_id)


def station_disconnected(station_id: str, site_id: int | None) -> None:
    Station.objects.filter(pk=station_id).update(connected=False, last_seen=timezone.now())
    events.publish("station.disconnected", station_id, site_id)


def station_seen(station: Station, batch: Batch | None = None) -> None:
    """A sign of life (a heartbeat); with `batch`, stored when the batch is (stations/bulk.py)."""
    with _batch(batch) as pending:
        pending.seen.append(station)


@contextmanager
def _batch(batch: Batch | None) -> Iterator[Batch]:
    """The caller's batch, or a batch of one stored at once."""
    if batch is not None:
        yield batch
        return
    alone = Batch()
    yield alone
    with atomic():
        alone.flush()


def connection_refused(station_id: str, remote_addr: str, reason: str, detail: str = "") -> None:
    RefusedConnection.objects.create(
        station_id=station_id[:200], remote_addr=remote_addr[:64], reason=reason,
        detail=detail[:200],
    )


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
    station_event_record(station, StationEvent.Kind.MONITORING, "Boot",
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


# --- status ---------------------------------------------------------------------------------

def connector_get(station: Station, evse_number: int, connector_number: int) -> Connector:
    # One query when the connector exists (it nearly always does), written out: the ORM
    # compiled it at every session's start. The get-or-creates only the first time.
    sql, types = _connector_sql(connection.vendor)
    [rows] = bulk.select_all([(sql, [station.pk, evse_number, connector_number], types)])
    if rows:
        connector, evse = bulk.instances((Connector, Evse), rows[0])
        connector.evse = evse
        return connector
    evse, _ = Evse.objects.get_or_create(station=station, number=evse_number)
    connector, _ = Connector.objects.get_or_create(evse=evse, number=connector_number)
    return connector


@lru_cache(maxsize=2)
def _connector_sql(vendor: str) -> tuple[str, tuple]:
    """A station's connector by EVSE and connector number, with its EVSE. Parameters: the
    station, the EVSE's number, the connector's."""
    quote = connection.ops.quote_name
    columns, fields = bulk.columns_of(("c", Connector), ("e", Evse))
    sql = f"""
        SELECT {columns} FROM {quote(Connector._meta.db_table)} c
        JOIN {quote(Evse._meta.db_table)} e ON e.id = c.evse_id
        WHERE e.station_id = %s AND e.number = %s AND c.number = %s"""
    return sql, fields


def status_record(station: Station, *, evse: int, connector: int | None, status: str,
                  detail: str = "", error_code: str = "", info: str = "",
                  timestamp: datetime | None = None, batch: Batch | None = None) -> None:
    """A status report; evse 0 (or no connector) is the station as a whole. With `batch`,
    stored when the batch is (stations/bulk.py); a late report never overwrites a newer one."""
    with _batch(batch) as pending:
        pending.statuses.append(bulk.StatusReport(
            station=station, evse=evse, connector=connector, status=status, detail=detail,
            error_code=error_code, info=info, timestamp=timestamp or timezone.now()))


# --- authorization --------------------------------------------------------------------------

def authorize(station: Station, token_value: str) -> Authorization:
    """How a charger must treat a token: its state, expiry and concurrent use of its group.

    One query, written out (_authorize_sql): the database computes the checks with the card.
    Each session authorizes three times (Authorize, start, end); built by the ORM, with its
    EXISTS subqueries, this query cost the ORM thread a tenth of its time in the bench.
    """
    sql, types = _authorize_sql(connection.vendor)
    [rows] = bulk.select_all([(sql, [station.site_id, station.pk, token_value], types)])
    if not rows:
        return Authorization(IdToken.Status.INVALID)
    *card, limited_to_sites, allowed_here, charging_elsewhere = rows[0]
    token, organization = bulk.instances((IdToken, Organization), card)
    token.organization = organization  # None for a card of no organization
    status = token.effective_status()
    if status == IdToken.Status.ACCEPTED:
        if limited_to_sites and not allowed_here:
            status = NOT_AT_THIS_SITE
        elif charging_elsewhere:
            status = "ConcurrentTx"
    return Authorization(status, token.expires_at, token.group, token)


@lru_cache(maxsize=2)
def _authorize_sql(vendor: str) -> tuple[str, tuple]:
    """The card with its organization, and three checks: is it limited to some sites; is this
    station's site one of them; is the card, or another of its group ("" is no group), in an
    active transaction at another station. Parameters: the site, the station, the card's
    value; and the model field of each column (None: the checks' booleans)."""
    quote = connection.ops.quote_name
    token, organization = IdToken._meta, Organization._meta
    sites = IdToken.allowed_sites.through._meta
    columns, fields = bulk.columns_of(("t", IdToken), ("o", Organization))
    sql = f"""
        SELECT {columns},
          EXISTS (SELECT 1 FROM {quote(sites.db_table)} s WHERE s.idtoken_id = t.id),
          EXISTS (SELECT 1 FROM {quote(sites.db_table)} s
                  WHERE s.idtoken_id = t.id AND s.site_id = %s),
          EXISTS (SELECT 1 FROM {quote(Transaction._meta.db_table)} x
                  JOIN {quote(token.db_table)} g ON g.id = x.id_token_id
                  WHERE x.state = '{Transaction.State.ACTIVE.value}' AND x.station_id <> %s
                    AND (x.id_token_id = t.id OR (t."group" <> '' AND g."group" = t."group")))
        FROM {quote(token.db_table)} t
        LEFT JOIN {quote(organization.db_table)} o ON o.id = t.organization_id
        WHERE t.value = %s"""
    return sql, (*fields, None, None, None)


# --- transactions ---------------------------------------------------------------------------

def transaction_update(station: Station, report: TransactionReport, batch: Batch) -> None:
    """An update of a transaction (2.0.1 TransactionEvent Updated), stored with the batch:
    set-based for a known transaction, by transaction_report for a first message or one that
    brings the transaction's token or EVSE (stations/bulk.py)."""
    batch.updates.append((station, report))


def transaction_report(station: Station, report: TransactionReport) -> tuple[Transaction, bool]:
    """Store one transaction message; returns the transaction and whether it was new.

    A retried message (new message id, same content) is recognised by its business key, under
    a database constraint, and changes nothing. Messages may arrive late, offline and out of
    order: an update or end may come before its start; the record is completed when it does.
    """
    tx, sequence_seen = _transaction_find(station, report)
    if tx is not None and _already_recorded(tx, report, sequence_seen):
        return tx, False
    created = tx is None
    if created:
        tx = _transaction_create(station, report)
    else:
        _transaction_apply(tx, report)
    bulk.insert_rows(TransactionMessage, bulk.MESSAGE_FIELDS,
                     [bulk.message_row(tx.pk, report, timezone.now())])
    _samples_store(station, report.evse or (tx.evse.number if tx.evse else 0), tx,
                   report.samples)
    if report.kind == TransactionMessage.Kind.END:
        _transaction_check_complete(tx)
    if not created or report.kind == TransactionMessage.Kind.END:
        tx.save()  # a new one was inserted whole (_transaction_create)
    signals.transaction_changed.send(Transaction, transaction=tx, kind=report.kind,
                                     created=created)
    events.publish(f"transaction.{report.kind}", station.pk, station.site_id,
                   transaction=tx.pk, transaction_id=tx.transaction_id)
    return tx, True


def _transaction_find(station: Station, report: TransactionReport,
                      ) -> tuple[Transaction | None, bool]:
    """The report's transaction, if it is known, and whether a message of the report's
    sequence number is stored already: one query, written out (_transaction_sql).

    Other messages than a start come with what pricing reads (billing's receiver of
    transaction_changed): the EVSE, the station and its site, the card and its organization.
    A start is nearly always new: the transaction alone. Built by the ORM, these queries and
    the sequence's look were three compilations and two round trips of the ORM thread at every
    session's start and end."""
    if report.transaction_id is not None:
        key, value = "transaction_id", report.transaction_id
    elif report.start_key is not None:
        key, value = "start_key", report.start_key
    else:
        return None, False
    related = report.kind != TransactionMessage.Kind.START
    sql, models, types = _transaction_sql(connection.vendor, key, related)
    [rows] = bulk.select_all([(sql, [report.sequence, station.pk, value], types)])
    if not rows:
        return None, False
    *values, sequence_seen = rows[0]
    tx, *joined = bulk.instances(models, values)
    if related:
        evse, station_row, site, token, organization = joined
        station_row.site = site
        if token is not None:
            token.organization = organization
        tx.evse, tx.station, tx.id_token = evse, station_row, token
    return tx, bool(sequence_seen)


@lru_cache(maxsize=8)
def _transaction_sql(vendor: str, key: str, related: bool) -> tuple[str, tuple, tuple]:
    """The transaction of a station by `key` (transaction_id or start_key), with or without
    its related rows, and whether a message of a sequence number exists. Parameters: the
    sequence number (None: false), the station, the key's value. Returns the SQL, the models
    whose columns it selects, in order, and each column's field (bulk.select_all)."""
    quote = connection.ops.quote_name
    message = TransactionMessage._meta
    models: tuple = (Transaction,)
    joins = ""
    if related:
        models = (Transaction, Evse, Station, Site, IdToken, Organization)
        joins = f"""
        LEFT JOIN {quote(Evse._meta.db_table)} e ON e.id = x.evse_id
        JOIN {quote(Station._meta.db_table)} s ON s.id = x.station_id
        LEFT JOIN {quote(Site._meta.db_table)} si ON si.id = s.site_id
        LEFT JOIN {quote(IdToken._meta.db_table)} t ON t.id = x.id_token_id
        LEFT JOIN {quote(Organization._meta.db_table)} o ON o.id = t.organization_id"""
    columns, fields = bulk.columns_of(*zip(("x", "e", "s", "si", "t", "o"), models,
                                          strict=False))
    sql = f"""
        SELECT {columns},
          EXISTS (SELECT 1 FROM {quote(message.db_table)} m
                  WHERE m.transaction_id = x.id AND m.sequence = %s)
        FROM {quote(Transaction._meta.db_table)} x{joins}
        WHERE x.station_id = %s AND x.{quote(key)} = %s"""
    return sql, models, (*fields, None)


def _already_recorded(tx: Transaction, report: TransactionReport, sequence_seen: bool) -> bool:
    if report.sequence is not None:
        return sequence_seen
    if report.kind == TransactionMessage.Kind.START:
        return True  # found by its start key or id: this start is a retry
    if report.kind == TransactionMessage.Kind.END:
        # A transaction we closed ourselves takes the charger's own end when it comes after all.
        return tx.state == Transaction.State.COMPLETED and tx.stop_reason != CLOSED_BY_CSMS
    return False


def _transaction_create(station: Station, report: TransactionReport) -> Transaction:
    """A transaction inserted with all the report says (one statement; a 1.6 start then
    takes its row id as its transaction id, a second one)."""
    evse = connector = None
    if report.evse:
        connector = connector_get(station, report.evse, report.connector or 1)
        evse = connector.evse
    tx = Transaction(
        station=station, evse=evse, connector=connector,
        # Until we know our row id, a unique placeholder (replaced below).
        transaction_id=report.transaction_id or uuid.uuid4().hex,
        start_key=report.start_key, id_token=_token(report), id_token_value=report.id_token or "",
        started_at=report.timestamp, offline=report.offline,
    )
    if report.kind == TransactionMessage.Kind.START:
        tx.meter_start_wh = report.meter_wh
    else:
        # The start has not reached us (yet): keep what we know and say so.
        tx.needs_review = True
        tx.review_note = "first message received was not the start"
    _transaction_apply(tx, report, created=True)
    tx.save()
    if report.transaction_id is None:
        # Chargers that let us number transactions (1.6) get our row id: unique and an integer.
        tx.transaction_id = str(tx.pk)
        tx.save(update_fields=["transaction_id"])
    return tx


def _token(report: TransactionReport) -> IdToken | None:
    """The report's card, with its organization (pricing reads it)."""
    if not report.id_token:
        return None
    if report.token is not None and report.token.value == report.id_token:
        return report.token
    return IdToken.objects.select_related("organization").filter(value=report.id_token).first()


def _transaction_apply(tx: Transaction, report: TransactionReport, created: bool = False) -> None:
    Kind = TransactionMessage.Kind
    if report.offline:
        tx.offline = True
    if report.id_token and not tx.id_token_value:
        tx.id_token_value = report.id_token
        tx.id_token = _token(report)
    if report.evse and tx.evse_id is None:
        tx.connector = connector_get(tx.station, report.evse, report.connector or 1)
        tx.evse = tx.connector.evse
    if report.kind == Kind.START and not created:
        # The start arrived after other messages of this transaction.
        tx.started_at = min(tx.started_at, report.timestamp)
        tx.meter_start_wh = report.meter_wh
    if report.kind == Kind.END:
        if tx.stop_reason == CLOSED_BY_CSMS:
            _flag(tx, "closed by the CSMS, then the charger's own end arrived: its values kept")
        tx.state = Transaction.State.COMPLETED
        tx.stopped_at = report.timestamp
        tx.stop_reason = report.stop_reason[:50]
        tx.meter_stop_wh = report.meter_wh
    register = [s.value for s in report.samples
                if s.measurand == ENERGY_REGISTER and not s.phase]
    if register:
        tx.meter_last_wh = register[-1]
        if tx.meter_start_wh is None and report.kind == Kind.START:
            tx.meter_start_wh = register[0]
        if tx.meter_stop_wh is None and report.kind == Kind.END:
            tx.meter_stop_wh = register[-1]
    elif report.meter_wh is not None:
        tx.meter_last_wh = report.meter_wh
    tx.started_at = min(tx.started_at, report.timestamp)


def _transaction_check_complete(tx: Transaction) -> None:
    """At its end, a transaction's energy is fixed; gaps in its messages are flagged."""
    if tx.meter_start_wh is None:
        first = tx.samples.filter(measurand=ENERGY_REGISTER, phase="").order_by("timestamp")
        first = first.values_list("value", flat=True).first()
        tx.meter_start_wh = first
    if tx.meter_start_wh is not None and tx.meter_stop_wh is not None:
        tx.energy_wh = tx.meter_stop_wh - tx.meter_start_wh
        if tx.energy_wh < 0:
            _flag(tx, "meter stop is below meter start")
    else:
        tx.energy_wh = None
        _flag(tx, "energy unknown: no start or stop meter reading")
    [messages] = bulk.select_all([(
        f"SELECT sequence, kind FROM {connection.ops.quote_name(TransactionMessage._meta.db_table)}"
        " WHERE transaction_id = %s", [tx.pk], (None, None))])
    sequences = [sequence for sequence, _ in messages if sequence is not None]
    kinds = {kind for _, kind in messages}
    if sequences:
        missing = set(range(min(sequences), max(sequences) + 1)) - set(sequences)
        if missing or TransactionMessage.Kind.START not in kinds or min(sequences) != 0:
            _flag(tx, "messages missing: sequence numbers " + _ranges(sorted(missing)) if missing
                  else "start message missing")
    elif (
        # Without sequence numbers, the start arriving later is all we can check.
        tx.review_note == "first message received was not the start"
        and TransactionMessage.Kind.START in kinds
    ):
        tx.needs_review, tx.review_note = False, ""


def _flag(tx: Transaction, note: str) -> None:
    tx.needs_review = True
    tx.review_note = note[:200]


def _ranges(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:20]) + (" …" if len(numbers) > 20 else "")


def meter_values_record(station: Station, *, evse: int, transaction_id: str | None,
                        samples: list[Sample], batch: Batch | None = None) -> None:
    """Samples outside a transaction message (1.6 MeterValues, 2.0.1 MeterValues): of the
    transaction named, else of the EVSE's active one. With `batch`, stored when it is."""
    with _batch(batch) as pending:
        pending.readings.append(bulk.Readings(station=station, evse=evse,
                                              transaction_id=transaction_id, samples=samples))


def _samples_store(station: Station, evse: int, tx: Transaction | None,
                   samples: list[Sample]) -> None:
    # A retried message's samples collide with the constraint and are skipped: stored once.
    rows = bulk.sample_rows(station, evse, tx.pk if tx else None, samples)
    bulk.insert_rows(MeterSample, bulk.SAMPLE_FIELDS, rows, ignore_conflicts=True)


# --- notifications and device model ---------------------------------------------------------

def station_event_record(station: Station, kind: str, name: str, detail: dict,
                         timestamp: datetime | None = None) -> None:
    StationEvent.objects.create(
        station=station, kind=kind, name=name[:100], detail=detail,
        timestamp=timestamp or timezone.now(),
    )
    if kind == StationEvent.Kind.FIRMWARE:
        Station.objects.filter(pk=station.pk).update(firmware_status=name[:50])
    if kind != StationEvent.Kind.MONITORING or name != "Boot":
        events.publish(f"station.{kind}", station.pk, station.site_id, name=name)


@dataclass(frozen=True, slots=True)
class VariableReport:
    component: str
    variable: str
    value: str
    attribute_type: str = "Actual"
    mutability: str = ""
    component_instance: str = ""
    variable_instance: str = ""
    evse: int | None = None
    connector: int | None = None


def device_variables_record(station: Station, reports: list[VariableReport]) -> None:
    """A device-model or configuration report: the latest value of each variable is kept."""
    for report in reports:
        DeviceVariable.objects.update_or_create(
            station=station, component=report.component,
            component_instance=report.component_instance, evse_number=report.evse,
            connector_number=report.connector, variable=report.variable,
            variable_instance=report.variable_instance, attribute_type=report.attribute_type,
            defaults={"value": report.value, "mutability": report.mutability},
        )


# --- liveness: presence across processes, transactions nobody will end ----------------------

def stations_present(station_ids: list[str], stale_after: float) -> None:
    """A server process holds these stations' sockets now (csms/gateway/liveness.py).

    A station the sweep marked offline meanwhile (its process could not refresh it, e.g. while
    the database was down) is connected again; one that disconnected just now (last_seen fresh)
    is not: its socket closed while this list was being made.
    """
    now = timezone.now()
    revived = list(Station.objects.filter(
        pk__in=station_ids, connected=False, last_seen__lt=now - timedelta(seconds=stale_after),
    ).values_list("pk", "site_id"))
    if revived:
        Station.objects.filter(pk__in=[pk for pk, _ in revived]).update(connected=True)
        for pk, site_id in revived:
            events.publish("station.connected", pk, site_id)
    Station.objects.filter(pk__in=station_ids).update(last_seen=now)


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


def transactions_close_abandoned(now: datetime | None = None) -> list[int]:
    """Close transactions their charger will not end, flagged for review (never silently).

    Policy (settings.OCPP):
    - reboot: the station booted after the transaction's last message and REBOOT_GRACE seconds
      have passed since (its queued messages come right after a boot) without a word about it;
    - silence: neither the transaction nor its station was heard of for TRANSACTION_SILENCE.
    The transaction ends at its last reading (meter stop = the last register value, stop time =
    its last sample or message), stop reason CLOSED_BY_CSMS. If the charger's own end arrives
    later after all, it replaces ours (see _already_recorded) and the flag says so.
    Each transaction is closed in its own database transaction; returns their pks.
    """
    now = now or timezone.now()
    active = Transaction.objects.filter(state=Transaction.State.ACTIVE)
    silent_since = now - timedelta(seconds=settings.OCPP["TRANSACTION_SILENCE"])
    reasons = {
        "reboot": active.filter(
            station__last_boot_at__gt=F("updated_at"),
            station__last_boot_at__lt=now - timedelta(seconds=settings.OCPP["REBOOT_GRACE"])),
        "silence": active.filter(updated_at__lt=silent_since).filter(
            Q(station__last_seen__lt=silent_since) | Q(station__last_seen=None)),
    }
    closed = []
    for reason, abandoned in reasons.items():
        for pk in list(abandoned.values_list("pk", flat=True)[:500]):
            with atomic():
                # Locked and checked again: a message may have come, another process may be here.
                tx = (abandoned.select_for_update(of=("self",)).select_related("station")
                      .filter(pk=pk).first())
                if tx is not None:
                    _transaction_close_abandoned(tx, reason, now)
                    closed.append(pk)
    return closed


def _transaction_close_abandoned(tx: Transaction, reason: str, now: datetime) -> None:
    times = [tx.started_at, *(t for t in (
        tx.samples.order_by("-timestamp").values_list("timestamp", flat=True).first(),
        tx.messages.order_by("-timestamp").values_list("timestamp", flat=True).first(),
    ) if t is not None)]
    tx.state = Transaction.State.COMPLETED
    tx.stopped_at = max(times)
    tx.stop_reason = CLOSED_BY_CSMS
    tx.meter_stop_wh = tx.meter_last_wh
    known = tx.meter_start_wh is not None and tx.meter_stop_wh is not None
    tx.energy_wh = tx.meter_stop_wh - tx.meter_start_wh if known else None
    if reason == "reboot":
        why = f"station rebooted at {tx.station.last_boot_at:%Y-%m-%d %H:%M} UTC without ending it"
    else:
        why = f"nothing heard of it or its station since {tx.updated_at:%Y-%m-%d %H:%M} UTC"
    _flag(tx, f"closed by the CSMS: {why}; energy "
              + ("to the last reading" if known else "unknown"))
    tx.save()
    log.warning("closed abandoned transaction %s of %s (%s)", tx.transaction_id, tx.station_id,
                reason)
    signals.transaction_changed.send(Transaction, transaction=tx, kind="end", created=False)
    events.publish("transaction.end", tx.station_id, tx.station.site_id, transaction=tx.pk,
                   transaction_id=tx.transaction_id)


def message_log_prune(days: int, batch: int = 5000, max_batches: int = 2000) -> int:
    """Delete message-log frames older than `days`, oldest first, one batch per statement.

    Walks the primary key (frames are logged in time order), so each batch is an index range,
    never a scan of the whole log. Returns how many frames were deleted.
    """
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        rows = list(MessageLog.objects.order_by("id").values_list("id", "created_at")[:batch])
        old = [pk for pk, created_at in rows if created_at < cutoff]
        if old:
            MessageLog.objects.filter(pk__in=old).delete()
            deleted += len(old)
        if len(old) < batch:
            break
    return deleted
