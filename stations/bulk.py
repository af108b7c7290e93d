"""Set-based writers for what every charger sends all day: heartbeats, status reports, meter
readings and transaction updates.

The gateway stores the messages of many chargers in one database transaction (group commit:
csms/gateway/writer.py). Their handlers add records to a `Batch`, and `Batch.flush()` stores them
all with a few statements per table instead of a few per message, inside the caller's
transaction. stations/services.py's station_seen, status_record, meter_values_record and
transaction_report (for an update) are the same writes: without a batch, a batch of one.

The batch reads what it needs once per flush (the connectors and transactions its records
name), and it writes rows in primary-key order, so two processes' batches take row locks in the
same order.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

import psycopg
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from stations import events, signals
from stations.models import (
    Connector,
    MeterSample,
    Station,
    StatusChange,
    Transaction,
    TransactionMessage,
)

if TYPE_CHECKING:
    from stations.services import Sample, TransactionReport

ENERGY_REGISTER = "Energy.Active.Import.Register"


@dataclass(slots=True)
class StatusReport:
    station: Station
    evse: int
    connector: int | None
    status: str
    detail: str
    error_code: str
    info: str
    timestamp: datetime


@dataclass(slots=True)
class Readings:
    """Samples outside a transaction message: of the transaction named, or of the EVSE's
    active one, or of no transaction."""

    station: Station
    evse: int
    transaction_id: str | None
    samples: list["Sample"]


@dataclass(slots=True)
class Batch:
    seen: list[Station] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    readings: list[Readings] = field(default_factory=list)
    updates: list[tuple[Station, "TransactionReport"]] = field(default_factory=list)

    def _lists(self) -> tuple[list, ...]:
        return self.seen, self.statuses, self.readings, self.updates

    def flush(self) -> None:
        """Store everything added, inside the caller's transaction; the batch is empty after."""
        now = timezone.now()
        if self.seen:
            Station.objects.filter(pk__in=sorted({s.pk for s in self.seen})).update(
                last_seen=now)
        if self.statuses:
            _statuses_store(self.statuses)
        if self.readings or self.updates:
            _transactions_store(self.readings, self.updates, now)
        for records in self._lists():
            records.clear()


# --- status ---------------------------------------------------------------------------------

def _statuses_store(reports: list[StatusReport]) -> None:
    def of_station(report: StatusReport) -> bool:  # evse 0 or no connector: the whole station
        return report.evse == 0 or report.connector is None

    connectors = _connectors([r for r in reports if not of_station(r)])
    updates, changes, rows = {}, [], []
    received = timezone.now()
    for report in reports:
        target = None
        if of_station(report):
            Station.objects.filter(pk=report.station.pk).update(status=report.status,
                                                                error_code=report.error_code)
        else:
            target = connectors[(report.station.pk, report.evse, report.connector)]
            # A late (offline) report must not overwrite a newer one.
            if target.status_at is None or target.status_at <= report.timestamp:
                target.status_at = report.timestamp
                updates[target.pk] = (report.status, report.detail, report.error_code,
                                      report.timestamp)
            changes.append((target.pk, report.status, report.timestamp))
        rows.append((report.station.pk, target.pk if target else None, report.status,
                     report.detail, report.error_code, report.info[:100], report.timestamp,
                     received))
        events.publish("connector.status", report.station.pk, report.station.site_id,
                       evse=report.evse, connector=report.connector, status=report.status)
    _update_each(Connector, ["status", "status_detail", "error_code", "status_at"], updates)
    insert_rows(StatusChange, ["station", "connector", "status", "status_detail", "error_code",
                               "info", "timestamp", "received_at"], rows)
    if changes:
        signals.connector_status_changed.send(Connector, changes=changes)


def _connectors(reports: list[StatusReport]) -> dict[tuple[str, int, int], Connector]:
    """The connectors the reports name, created the first time one is named."""
    from stations.services import connector_get

    wanted = {(r.station.pk, r.evse, r.connector) for r in reports}
    if not wanted:
        return {}
    found = {
        (c.evse.station_id, c.evse.number, c.number): c
        for c in Connector.objects.select_related("evse").filter(
            evse__station_id__in={key[0] for key in wanted}).only(
            "pk", "number", "status_at", "evse__station_id", "evse__number")
    }
    stations = {r.station.pk: r.station for r in reports}
    for key in sorted(wanted - found.keys()):
        found[key] = connector_get(stations[key[0]], key[1], key[2])
    return found


# --- meter readings and transaction updates -------------------------------------------------

def _transactions_store(readings: list[Readings],
                        updates: list[tuple[Station, "TransactionReport"]],
                        now: datetime) -> None:
    from stations.services import transaction_report

    by_id = _transactions(
        [(r.station.pk, r.transaction_id) for r in readings if r.transaction_id is not None]
        + [(station.pk, report.transaction_id) for station, report in updates])
    active = _active_on_evse(
        [(r.station.pk, r.evse) for r in readings if r.transaction_id is None and r.evse])
    recorded = _sequences_recorded(
        [(by_id[(station.pk, report.transaction_id)].pk, report.sequence)
         for station, report in updates
         if (station.pk, report.transaction_id) in by_id and report.sequence is not None])
    changed: dict[int, _Tx] = {}
    samples, messages, announced = [], [], {}
    for r in readings:
        tx = (by_id.get((r.station.pk, r.transaction_id)) if r.transaction_id is not None
              else active.get((r.station.pk, r.evse)))
        samples += sample_rows(r.station, r.evse, tx.pk if tx else None, r.samples)
        if tx is None:
            continue
        register = _register(r.samples)
        if register is not None and tx.state == Transaction.State.ACTIVE:
            tx.meter_last_wh = register
            changed[tx.pk] = tx
        announced[tx.pk] = (r.station, tx)
    for station, report in updates:
        tx = by_id.get((station.pk, report.transaction_id))
        if tx is None or (report.evse and tx.evse_number is None) or (
                report.id_token and not tx.id_token_value):
            # What a first message or a late detail brings is the one-message writer's work.
            transaction_report(station, report)
            continue
        if (tx.pk, report.sequence) in recorded:
            continue  # a retry: stored already
        recorded.add((tx.pk, report.sequence))
        messages.append((tx.pk, report.kind, report.sequence, report.timestamp,
                         report.trigger[:50], report.offline, now))
        samples += sample_rows(station, report.evse or tx.evse_number or 0, tx.pk,
                               report.samples)
        register = _register(report.samples)
        tx.meter_last_wh = register if register is not None else (
            report.meter_wh if report.meter_wh is not None else tx.meter_last_wh)
        tx.offline = tx.offline or report.offline
        tx.started_at = min(tx.started_at, report.timestamp)
        changed[tx.pk] = tx
        announced[tx.pk] = (station, tx)
    insert_rows(TransactionMessage, ["transaction", "kind", "sequence", "timestamp", "trigger",
                                     "offline", "received_at"], messages)
    # A retried message's samples collide with the constraint and are skipped: stored once.
    insert_rows(MeterSample, SAMPLE_FIELDS, samples, ignore_conflicts=True)
    # updated_at: the transaction is alive (services.transactions_close_abandoned reads it).
    _update_each(Transaction, ["meter_last_wh", "offline", "started_at", "updated_at"],
                 {pk: (tx.meter_last_wh, tx.offline, tx.started_at, now)
                  for pk, tx in changed.items()})
    if changed:
        signals.transactions_updated.send(Transaction, pks=sorted(changed))
    for station, tx in announced.values():
        events.publish("transaction.update", station.pk, station.site_id, transaction=tx.pk,
                       transaction_id=tx.transaction_id)


@dataclass(slots=True)
class _Tx:
    """What a batch reads and changes of a transaction (cheaper than a model instance)."""

    pk: int
    station_id: str
    transaction_id: str
    state: str
    evse_number: int | None
    id_token_value: str
    meter_last_wh: Decimal | None
    offline: bool
    started_at: datetime


_TX_COLUMNS = ("pk", "station_id", "transaction_id", "state", "evse__number", "id_token_value",
               "meter_last_wh", "offline", "started_at")


def _transactions(keys: list[tuple[str, str]]) -> dict[tuple[str, str], _Tx]:
    if not keys:
        return {}
    wanted = set(keys)
    rows = Transaction.objects.filter(
        station_id__in={s for s, _ in wanted}, transaction_id__in={t for _, t in wanted},
    ).order_by().values_list(*_TX_COLUMNS)
    found = (_Tx(*row) for row in rows)
    return {(tx.station_id, tx.transaction_id): tx for tx in found
            if (tx.station_id, tx.transaction_id) in wanted}


def _active_on_evse(keys: list[tuple[str, int]]) -> dict[tuple[str, int], _Tx]:
    if not keys:
        return {}
    wanted = set(keys)
    found: dict[tuple[str, int], _Tx] = {}
    # Newest first: an EVSE's most recent active transaction wins.
    for row in Transaction.objects.filter(
            station_id__in={s for s, _ in wanted}, evse__number__in={e for _, e in wanted},
            state=Transaction.State.ACTIVE).order_by("-started_at").values_list(*_TX_COLUMNS):
        tx = _Tx(*row)
        key = (tx.station_id, tx.evse_number)
        if key in wanted:
            found.setdefault(key, tx)
    return found


def _sequences_recorded(keys: list[tuple[int, int]]) -> set[tuple[int, int]]:
    if not keys:
        return set()
    wanted = set(keys)
    rows = TransactionMessage.objects.filter(
        transaction_id__in={t for t, _ in wanted}, sequence__in={s for _, s in wanted},
    ).values_list("transaction_id", "sequence")
    return {row for row in rows if row in wanted}


def _register(samples: list["Sample"]) -> Decimal | None:
    register = [s.value for s in samples if s.measurand == ENERGY_REGISTER and not s.phase]
    return register[-1] if register else None


SAMPLE_FIELDS = ["station", "evse_number", "transaction", "timestamp", "measurand", "phase",
                 "location", "context", "unit", "value"]


def sample_rows(station: Station, evse: int, tx_pk: int | None,
                samples: list["Sample"]) -> list[tuple]:
    """Rows of MeterSample in SAMPLE_FIELDS order, for insert_rows."""
    return [(station.pk, evse, tx_pk, s.timestamp, s.measurand, s.phase, s.location, s.context,
             s.unit, s.value) for s in samples]


# --- many rows, one statement ----------------------------------------------------------------

@contextmanager
def _cursor() -> Iterator:
    """A cursor in the current transaction. On PostgreSQL one that binds parameters on the
    server and takes the query as it is, with $n placeholders (_values): Django's own cursor
    (psycopg's ClientCursor) writes every value into the SQL text in Python, and psycopg's %s
    parser runs a regular expression over every long statement; together they cost more than
    PostgreSQL took to store the rows."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with psycopg.RawCursor(connection.connection) as cursor:
            yield cursor
    else:
        with connection.cursor() as cursor:
            yield cursor


@lru_cache(maxsize=512)
def _values(vendor: str, count: int, casts: tuple[str | None, ...]) -> str:
    """`(…), (…)`: `count` rows of len(casts) placeholders, each cast to its type if given;
    $1, $2, … on PostgreSQL (see _cursor), %s elsewhere."""
    marks = iter(range(1, count * len(casts) + 1))
    rows = []
    for _ in range(count):
        cells = [f"${next(marks)}" if vendor == "postgresql" else "%s" for _ in casts]
        rows.append("(" + ", ".join(f"CAST({cell} AS {cast})" if cast else cell
                                    for cell, cast in zip(cells, casts, strict=True)) + ")")
    return ", ".join(rows)


def _prepared(model: type[Model], fields: list[str]) -> list:
    """Per field, how a value goes to the database: as it is on PostgreSQL (psycopg adapts
    str, int, Decimal, datetime), except JSON; by the field itself elsewhere."""
    columns = [model._meta.get_field(name) for name in fields]
    if connection.vendor != "postgresql":
        return [lambda value, column=column: column.get_db_prep_save(value, connection)
                for column in columns]
    return [(lambda value, column=column: None if value is None else
             connection.ops.adapt_json_value(value, column.encoder))
            if column.get_internal_type() == "JSONField" else None for column in columns]


def _rows(model: type[Model], fields: list[str], rows: list[tuple]) -> list[list]:
    converters = _prepared(model, fields)
    if not any(converters):
        return [list(row) for row in rows]
    return [[value if convert is None else convert(value)
             for convert, value in zip(converters, row, strict=True)] for row in rows]


def insert_rows(model: type[Model], fields: list[str], rows: list[tuple], *,
                ignore_conflicts: bool = False) -> None:
    """INSERT one row per tuple (values in `fields` order, foreign keys as ids), as few
    multi-row statements as the backend's parameter limit allows. With ignore_conflicts, a row
    a unique constraint already holds is skipped."""
    if not rows:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    head = (f"INSERT INTO {quote(meta.db_table)} ("
            + ", ".join(quote(meta.get_field(name).column) for name in fields) + ") VALUES ")
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    prepared = _rows(model, fields, rows)
    step = _rows_per_statement(len(fields))
    with _cursor() as cursor:
        for start in range(0, len(prepared), step):
            chunk = prepared[start:start + step]
            cursor.execute(head + _values(connection.vendor, len(chunk), (None,) * len(fields))
                           + tail,
                           [value for row in chunk for value in row])


def _update_each(model: type[Model], fields: list[str], values: dict[int, tuple]) -> None:
    """`UPDATE table SET fields = values WHERE pk = key` for each key, in key order (two
    processes' batches lock rows in the same order): on PostgreSQL one statement joining a
    VALUES list, elsewhere one executemany (SQLite runs it in C, no round trips)."""
    if not values:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    names = [*fields, meta.pk.name]
    rows = _rows(model, names, [(*values[pk], pk) for pk in sorted(values)])
    if connection.vendor != "postgresql":
        sql = (f"UPDATE {quote(meta.db_table)} SET "
               + ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in fields)
               + f" WHERE {quote(meta.pk.column)} = %s")
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        return
    columns = [meta.get_field(name) for name in names]
    # VALUES has no column types of its own: each value is cast to its column's type.
    casts = tuple(column.db_type(connection) for column in columns)
    aliases = [f"v{n}" for n in range(len(columns))]
    step = _rows_per_statement(len(columns))
    with _cursor() as cursor:
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} AS t SET "
                + ", ".join(f"{quote(column.column)} = v.{alias}"
                            for column, alias in zip(columns[:-1], aliases, strict=False))
                + " FROM (VALUES " + _values(connection.vendor, len(chunk), casts) + ") AS v("
                + ", ".join(aliases) + f") WHERE t.{quote(meta.pk.column)} = v.{aliases[-1]}",
                [value for row in chunk for value in row])


def _rows_per_statement(columns: int) -> int:
    # PostgreSQL's protocol takes at most 65,535 parameters; SQLite has its own limit.
    limit = connection.features.max_query_params or 65535
    return max(1, limit // columns)
