"""Set-based writers for what every charger sends all day: heartbeats, status reports, meter
readings and transaction updates, and the message log of every CALL.

The gateway stores the messages of many chargers in one database transaction (group commit:
csms/gateway/writer.py). Their handlers add records to a `Batch`, and `Batch.flush()` stores them
all with a few statements per table instead of a few per message, inside the caller's
transaction. stations/services.py's station_seen, status_record, meter_values_record and
transaction_report (for an update) are the same writes: without a batch, a batch of one.

A flush reads what it needs once (the connectors and transactions its records name), computes
every row, then writes them all. On PostgreSQL the reads go out together and so do the writes
(psycopg's pipeline mode): two round trips, not one per statement. Each round trip costs more
than the statement: the ORM thread waits for a core and then for the event loop to hand back the
GIL (up to the switch interval, csms/asgi.py): with Python's 5 ms, a 60-message batch of fifteen
statements took 21 ms alone and 187 ms beside a CPU-busy thread, 15 and 90 ms in four. Rows
are written in primary-key order, so two processes' batches take row locks in the same order.
"""

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone

from stations import events, signals
from stations.models import (
    Connector,
    Evse,
    MessageLog,
    MeterSample,
    Station,
    StatusChange,
    Transaction,
    TransactionMessage,
)

if TYPE_CHECKING:
    from stations.services import Sample, TransactionReport

ENERGY_REGISTER = "Energy.Active.Import.Register"
LOG_FIELDS = ["station", "direction", "message_type", "message_id", "action", "payload",
              "created_at"]
SAMPLE_FIELDS = ["station", "evse_number", "transaction", "timestamp", "measurand", "phase",
                 "location", "context", "unit", "value"]
MESSAGE_FIELDS = ["transaction", "kind", "sequence", "timestamp", "trigger", "offline",
                  "received_at"]


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
    # Message-log rows (LOG_FIELDS order): the gateway logs every frame of the batch.
    log: list[tuple] = field(default_factory=list)

    def flush(self) -> None:
        """Store everything added, inside the caller's transaction; the batch is empty after."""
        now = timezone.now()
        found = _Found.read(self)
        rows = _Rows(log=self.log)
        rows.seen = {station.pk: (now,) for station in self.seen}
        status_changes = _statuses(self.statuses, found, rows)
        changed = _transactions(self.readings, self.updates, found, rows, now)
        rows.write()
        # Receivers read what was just written.
        if status_changes:
            signals.connector_status_changed.send(Connector, changes=status_changes)
        if changed:
            signals.transactions_updated.send(Transaction, pks=sorted(changed))
        for records in (self.seen, self.statuses, self.readings, self.updates, self.log):
            records.clear()


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


@dataclass(slots=True)
class _Connector:
    pk: int
    status_at: datetime | None


_TX_SELECT = ("SELECT t.id, t.station_id, t.transaction_id, t.state, e.number, t.id_token_value,"
              " t.meter_last_wh, t.offline, t.started_at FROM stations_transaction t"
              " LEFT JOIN stations_evse e ON e.id = t.evse_id WHERE ")


def _fields(model: type[Model], *names: str) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


# The model field of each column of the raw reads below (select_all types their values).
_CONNECTOR_TYPES = (*_fields(Connector, "id"), *_fields(Evse, "station", "number"),
                    *_fields(Connector, "number", "status_at"))
_SEQUENCE_TYPES = (*_fields(Transaction, "station", "transaction_id"),
                   *_fields(TransactionMessage, "sequence"))
_TX_TYPES = (*_fields(Transaction, "id", "station", "transaction_id", "state"),
             *_fields(Evse, "number"),
             *_fields(Transaction, "id_token_value", "meter_last_wh", "offline", "started_at"))


@dataclass(slots=True)
class _Found:
    """What a flush reads before it writes: one round trip on PostgreSQL (select_all)."""

    connectors: dict[tuple[str, int, int], _Connector] = field(default_factory=dict)
    by_id: dict[tuple[str, str], _Tx] = field(default_factory=dict)
    active: dict[tuple[str, int], _Tx] = field(default_factory=dict)
    recorded: set[tuple[str, str, int]] = field(default_factory=set)

    @classmethod
    def read(cls, batch: Batch) -> "_Found":
        connectors = {(r.station.pk, r.evse, r.connector) for r in batch.statuses
                      if not _of_station(r)}
        ids = ({(r.station.pk, r.transaction_id) for r in batch.readings
                if r.transaction_id is not None}
               | {(station.pk, report.transaction_id) for station, report in batch.updates})
        evses = {(r.station.pk, r.evse) for r in batch.readings
                 if r.transaction_id is None and r.evse}
        sequences = {(station.pk, report.transaction_id, report.sequence)
                     for station, report in batch.updates if report.sequence is not None}
        # Some conditions (stations and numbers apart) take more than the keys wanted; the rows
        # are matched to them below.
        queries: dict[str, tuple[str, list, tuple[Field, ...]]] = {}
        if connectors:
            where, params = sql_in("e.station_id", {key[0] for key in connectors})
            queries["connectors"] = (
                "SELECT c.id, e.station_id, e.number, c.number, c.status_at FROM"
                " stations_connector c JOIN stations_evse e ON e.id = c.evse_id WHERE " + where,
                params, _CONNECTOR_TYPES)
        if ids:
            pairs, params = _in_pairs(ids)
            queries["by_id"] = (_TX_SELECT + pairs, params, _TX_TYPES)
        if evses:
            stations, params = sql_in("t.station_id", {s for s, _ in evses})
            numbers, more = sql_in("e.number", {e for _, e in evses})
            queries["active"] = (_TX_SELECT + f"{stations} AND {numbers} AND t.state = %s"
                                 " ORDER BY t.started_at DESC",
                                 params + more + [Transaction.State.ACTIVE], _TX_TYPES)
        if sequences:
            pairs, params = _in_pairs({(s, t) for s, t, _ in sequences})
            seqs, more = sql_in("m.sequence", {n for _, _, n in sequences})
            queries["recorded"] = (
                "SELECT t.station_id, t.transaction_id, m.sequence FROM"
                " stations_transactionmessage m JOIN stations_transaction t"
                f" ON t.id = m.transaction_id WHERE {pairs} AND {seqs}",
                params + more, _SEQUENCE_TYPES)
        results = dict(zip(queries, select_all(list(queries.values())), strict=True))

        found = cls()
        for pk, station_id, evse, number, status_at in results.get("connectors", []):
            found.connectors[(station_id, evse, number)] = _Connector(pk, status_at)
        for tx in (_Tx(*row) for row in results.get("by_id", [])):
            if (tx.station_id, tx.transaction_id) in ids:
                found.by_id[(tx.station_id, tx.transaction_id)] = tx
        for tx in (_Tx(*row) for row in results.get("active", [])):
            # Newest first: an EVSE's most recent active transaction wins.
            if (tx.station_id, tx.evse_number) in evses:
                found.active.setdefault((tx.station_id, tx.evse_number), tx)
        found.recorded = {row for row in results.get("recorded", []) if row in sequences}
        # A connector named for the first time: created now (the ORM's get-or-creates).
        missing = sorted(connectors - found.connectors.keys())
        if missing:
            from stations.services import connector_get

            stations_by_id = {r.station.pk: r.station for r in batch.statuses}
            for station_id, evse, number in missing:
                connector = connector_get(stations_by_id[station_id], evse, number)
                found.connectors[(station_id, evse, number)] = _Connector(
                    connector.pk, connector.status_at)
        return found


def _in_pairs(keys: set[tuple[str, str]]) -> tuple[str, list]:
    """The condition on transactions named by (station, transaction id), pair by pair. Not
    `station IN (…) AND id IN (…)`: that reads every transaction of the stations named, their
    whole history (40 keys at 100 transactions a station: 2.2 to 2.9 ms; pair by pair 0.3 to
    0.45 ms). On PostgreSQL two array parameters, so the statement's text is the same however
    many."""
    pairs = sorted(keys)
    if connection.vendor == "postgresql":
        return ("(t.station_id, t.transaction_id) IN"
                " (SELECT * FROM unnest(%s::varchar[], %s::varchar[]))",
                [[s for s, _ in pairs], [t for _, t in pairs]])
    return (f"(t.station_id, t.transaction_id) IN (VALUES {', '.join(['(%s, %s)'] * len(pairs))})",
            [value for pair in pairs for value in pair])


@dataclass(slots=True)
class _Rows:
    """Everything a flush writes, computed before any of it is sent (write)."""

    log: list[tuple]
    seen: dict[str, tuple] = field(default_factory=dict)
    station_status: dict[str, tuple] = field(default_factory=dict)
    connectors: dict[int, tuple] = field(default_factory=dict)
    status_changes: list[tuple] = field(default_factory=list)
    tx_messages: list[tuple] = field(default_factory=list)
    samples: list[tuple] = field(default_factory=list)
    transactions: dict[int, tuple] = field(default_factory=dict)

    def write(self) -> None:
        with _pipeline():
            _update_each(Station, ["last_seen"], self.seen)
            _update_each(Station, ["status", "error_code"], self.station_status)
            _update_each(Connector, ["status", "status_detail", "error_code", "status_at"],
                         self.connectors)
            insert_rows(StatusChange, ["station", "connector", "status", "status_detail",
                                       "error_code", "info", "timestamp", "received_at"],
                        self.status_changes)
            insert_rows(TransactionMessage, MESSAGE_FIELDS, self.tx_messages)
            # A retried message's samples collide with the constraint and are skipped.
            insert_rows(MeterSample, SAMPLE_FIELDS, self.samples, ignore_conflicts=True)
            # updated_at: the transaction is alive (services.transactions_close_abandoned).
            _update_each(Transaction, ["meter_last_wh", "offline", "started_at", "updated_at"],
                         self.transactions)
            insert_rows(MessageLog, LOG_FIELDS, self.log)


# --- status ---------------------------------------------------------------------------------

def _of_station(report: StatusReport) -> bool:  # evse 0 or no connector: the whole station
    return report.evse == 0 or report.connector is None


def _statuses(reports: list[StatusReport], found: _Found,
              rows: _Rows) -> list[tuple[int, str, datetime]]:
    """Rows of the reports; returns the connectors' changes (signals.connector_status_changed)."""
    changes = []
    received = timezone.now()
    for report in reports:
        target = None
        if _of_station(report):
            rows.station_status[report.station.pk] = (report.status, report.error_code)
        else:
            target = found.connectors[(report.station.pk, report.evse, report.connector)]
            # A late (offline) report must not overwrite a newer one.
            if target.status_at is None or target.status_at <= report.timestamp:
                target.status_at = report.timestamp
                rows.connectors[target.pk] = (report.status, report.detail, report.error_code,
                                              report.timestamp)
            changes.append((target.pk, report.status, report.timestamp))
        rows.status_changes.append((
            report.station.pk, target.pk if target else None, report.status, report.detail,
            report.error_code, report.info[:100], report.timestamp, received))
        events.publish("connector.status", report.station.pk, report.station.site_id,
                       evse=report.evse, connector=report.connector, status=report.status)
    return changes


# --- meter readings and transaction updates -------------------------------------------------

def _transactions(readings: list[Readings], updates: list[tuple[Station, "TransactionReport"]],
                  found: _Found, rows: _Rows, now: datetime) -> dict[int, _Tx]:
    """Rows of the readings and updates; returns the transactions they changed."""
    from stations.services import transaction_report

    changed: dict[int, _Tx] = {}
    announced = {}
    for r in readings:
        tx = (found.by_id.get((r.station.pk, r.transaction_id)) if r.transaction_id is not None
              else found.active.get((r.station.pk, r.evse)))
        rows.samples += sample_rows(r.station, r.evse, tx.pk if tx else None, r.samples)
        if tx is None:
            continue
        register = _register(r.samples)
        if register is not None and tx.state == Transaction.State.ACTIVE:
            tx.meter_last_wh = register
            changed[tx.pk] = tx
        announced[tx.pk] = (r.station, tx)
    for station, report in updates:
        tx = found.by_id.get((station.pk, report.transaction_id))
        if tx is None or (report.evse and tx.evse_number is None) or (
                report.id_token and not tx.id_token_value):
            # What a first message or a late detail brings is the one-message writer's work.
            transaction_report(station, report)
            continue
        key = (station.pk, report.transaction_id, report.sequence)
        if key in found.recorded:
            continue  # a retry: stored already
        found.recorded.add(key)
        rows.tx_messages.append(message_row(tx.pk, report, now))
        rows.samples += sample_rows(station, report.evse or tx.evse_number or 0, tx.pk,
                                    report.samples)
        register = _register(report.samples)
        tx.meter_last_wh = register if register is not None else (
            report.meter_wh if report.meter_wh is not None else tx.meter_last_wh)
        tx.offline = tx.offline or report.offline
        tx.started_at = min(tx.started_at, report.timestamp)
        changed[tx.pk] = tx
        announced[tx.pk] = (station, tx)
    rows.transactions = {pk: (tx.meter_last_wh, tx.offline, tx.started_at, now)
                         for pk, tx in changed.items()}
    for station, tx in announced.values():
        events.publish("transaction.update", station.pk, station.site_id, transaction=tx.pk,
                       transaction_id=tx.transaction_id)
    return changed


def _register(samples: list["Sample"]) -> Decimal | None:
    register = [s.value for s in samples if s.measurand == ENERGY_REGISTER and not s.phase]
    return register[-1] if register else None


def message_row(tx_pk: int, report: "TransactionReport", received_at: datetime) -> tuple:
    """A TransactionMessage row in MESSAGE_FIELDS order, for insert_rows."""
    return (tx_pk, report.kind, report.sequence, report.timestamp, report.trigger[:50],
            report.offline, received_at)


def sample_rows(station: Station, evse: int, tx_pk: int | None,
                samples: list["Sample"]) -> list[tuple]:
    """Rows of MeterSample in SAMPLE_FIELDS order, for insert_rows."""
    return [(station.pk, evse, tx_pk, s.timestamp, s.measurand, s.phase, s.location, s.context,
             s.unit, s.value) for s in samples]


# --- statements -----------------------------------------------------------------------------

@contextmanager
def _pipeline() -> Iterator[None]:
    """The statements of the block go out together and are answered together when it ends,
    where an error in any of them is raised (psycopg's pipeline mode on PostgreSQL; SQLite has
    no round trips to save). Only for statements whose results nobody reads: an ORM save reads
    its UPDATE's row count, which a pipeline has not got yet. A libpq older than 14 has no
    pipeline mode: the statements then go one by one, as they would without this."""
    if connection.vendor != "postgresql" or not psycopg.Pipeline.is_supported():
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


def sql_in(column: str, values: set) -> tuple[str, list]:
    """`column IN (…)` and its parameters; on PostgreSQL `= ANY(array)`, one parameter, so the
    statement's text is the same however many values."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [sorted(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", sorted(values)


def select_all(queries: list[tuple[str, list, tuple[Field | None, ...]]]) -> list[list[tuple]]:
    """The rows of each (sql with %s, parameters, the model field of each column or None for a
    value taken as the database returns it), typed as the ORM would type them; on PostgreSQL
    all queries in one round trip. For the reads of the writer's every batch, where building
    the ORM's query cost more than running it."""
    if not queries:
        return []  # not even an empty pipeline: its Sync would be a round trip
    numbered = connection.vendor == "postgresql"  # _cursor's RawCursor takes $n
    with ExitStack() as open_cursors:
        cursors = [open_cursors.enter_context(_cursor()) for _ in queries]
        # One query is one round trip without a pipeline too, and fewer waits on the socket.
        with _pipeline() if len(queries) > 1 else nullcontext():
            for cursor, (sql, params, _) in zip(cursors, queries, strict=True):
                cursor.execute(_numbered(sql) if numbered else sql, params)
        results = [cursor.fetchall() for cursor in cursors]
    return [_typed(types, rows) for (_, _, types), rows in zip(queries, results, strict=True)]


def columns_of(*tables: tuple[str, type[Model]]) -> tuple[str, tuple[Field, ...]]:
    """The select list of a written-out join: every concrete column of each (alias, model), in
    order, and their fields for select_all to type them; instances() reads such a row back."""
    quote = connection.ops.quote_name
    pairs = [(alias, f) for alias, model in tables for f in model._meta.concrete_fields]
    return (", ".join(f"{alias}.{quote(f.column)}" for alias, f in pairs),
            tuple(f for _, f in pairs))


def instances(models: tuple[type[Model], ...], row: Sequence) -> list[Model | None]:
    """One instance per model from a row of their concrete fields' columns side by side, in
    the models' order (a written-out join read by select_all); None for a model whose key is
    NULL (a LEFT JOIN that found nothing)."""
    result: list[Model | None] = []
    start = 0
    for model in models:
        names = [f.attname for f in model._meta.concrete_fields]
        part = row[start:start + len(names)]
        start += len(names)
        key = part[names.index(model._meta.pk.attname)]
        result.append(None if key is None else model.from_db(connection.alias, names, part))
    return result


@lru_cache(maxsize=64)
def _numbered(sql: str) -> str:
    """%s placeholders as $1, $2, … (a RawCursor's)."""
    parts = sql.split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


def _typed(types: tuple[Field | None, ...], rows: list[tuple]) -> list[tuple]:
    converters = _converters(connection.vendor, types)
    if not any(converters):
        return rows
    return [tuple(value if not convert or value is None else _convert(convert, value)
                  for convert, value in zip(converters, row, strict=True)) for row in rows]


def _convert(convert: tuple, value: Any) -> Any:
    column, functions = convert
    for function in functions:
        value = function(value, column, connection)
    return value


@lru_cache(maxsize=64)
def _converters(vendor: str, types: tuple[Field | None, ...]) -> list[tuple | None]:
    """Per column, what the ORM applies to a value read raw (on SQLite a datetime comes back
    naive and a decimal as a float; psycopg already returns Python's types)."""
    result: list[tuple | None] = []
    for model_field in types:
        if model_field is None:
            result.append(None)
            continue
        column = model_field.get_col(model_field.model._meta.db_table)
        functions = (connection.ops.get_db_converters(column)
                     + column.get_db_converters(connection))
        result.append((column, tuple(functions)) if functions else None)
    return result



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


class JsonText(str):
    """JSON written already (a frame's payload as it came or went): a JSONField stores it as it
    is instead of writing the value out again."""


def _prepared(model: type[Model], fields: list[str]) -> list:
    """Per field, how a value goes to the database: as it is on PostgreSQL (psycopg adapts
    str, int, Decimal, datetime), except JSON; by the field itself elsewhere. JsonText as it is
    everywhere: PostgreSQL reads the text as jsonb, SQLite keeps JSON as text."""
    columns = [model._meta.get_field(name) for name in fields]
    if connection.vendor != "postgresql":
        return [lambda value, column=column: str(value) if type(value) is JsonText else
                column.get_db_prep_save(value, connection) for column in columns]
    return [(lambda value, column=column: None if value is None else str(value)
             if type(value) is JsonText else
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
    with _cursor() as cursor:
        for chunk in _chunks(prepared, len(fields)):
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
    with _cursor() as cursor:
        for chunk in _chunks(rows, len(columns)):
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} AS t SET "
                + ", ".join(f"{quote(column.column)} = v.{alias}"
                            for column, alias in zip(columns[:-1], aliases, strict=False))
                + " FROM (VALUES " + _values(connection.vendor, len(chunk), casts) + ") AS v("
                + ", ".join(aliases) + f") WHERE t.{quote(meta.pk.column)} = v.{aliases[-1]}",
                [value for row in chunk for value in row])


# Statements psycopg keeps prepared per connection (its default is 100). A batch's writes are
# eight tables' statements in up to ten sizes each (_chunks), its reads a few more: with room for
# them all, none is deallocated and prepared again as sizes come and go. ~70 KB of the server's
# memory each (pg_backend_memory_contexts).
PREPARED_MAX = 256


def room_for_prepared_statements(sender: Any, connection: BaseDatabaseWrapper,
                                 **kwargs: Any) -> None:
    """On each new PostgreSQL connection (connection_created, stations/apps.py)."""
    if connection.vendor == "postgresql":
        connection.connection.prepared_max = PREPARED_MAX


def _chunks(rows: list, columns: int) -> Iterator[list]:
    """The rows in as few chunks as the backend's parameter limit allows (PostgreSQL's protocol
    takes 65,535; SQLite has its own). On PostgreSQL each chunk is a power of two (51 rows: 32,
    16, 2, 1): a statement's text depends on its number of rows, and in powers of two a table's
    statements have a few texts only, which psycopg prepares once per connection instead of
    PostgreSQL parsing and planning them for every batch (DB_PREPARED_STATEMENTS)."""
    most = max(1, (connection.features.max_query_params or 65535) // columns)
    if connection.vendor != "postgresql":
        for start in range(0, len(rows), most):
            yield rows[start:start + most]
        return
    most = 1 << (most.bit_length() - 1)
    start = 0
    while start < len(rows):
        size = min(most, 1 << ((len(rows) - start).bit_length() - 1))
        yield rows[start:start + size]
        start += size
