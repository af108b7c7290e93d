"""The charging domain's written-out SQL: the one module that writes statements by hand.

What every charger sends all day (heartbeats, status reports, meter readings, transaction
updates, and the message log of every frame) is stored set-based: the gateway stores the
messages of many chargers in one database transaction (group commit), their records gather in
a stations.services.batch.Batch, and a flush reads what it needs once (read_for_batch), computes
every row, then writes them all (BatchRows.write). A single message outside the gateway's
writer is a batch of one, through the same reads, rows and writes, so the two paths cannot
disagree. The few per-message reads of a session's start and end (connector_row,
token_with_checks, transaction_by_key, message_sequences) are written out here too: built by
the ORM, their compilation cost the single ORM thread more than running them.

On PostgreSQL the reads go out together and so do the writes (psycopg's pipeline mode): two
round trips, not one per statement. Each round trip costs more than the statement: the ORM
thread waits for a core and then for the event loop to hand back the GIL (up to the switch
interval set in csms/asgi.py). Rows are written in primary-key order, so two processes' batches
take row locks in the same order.

Every table and column name comes from the models' metadata and is quoted by the backend;
values are always parameters.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from accounts.models import IdToken, Organization, Site, SiteAccess
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
from stations.records import Sample, TransactionReport

LOG_FIELDS = ["station", "direction", "message_type", "message_id", "action", "payload",
              "created_at"]
SAMPLE_FIELDS = ["station", "evse_number", "transaction", "timestamp", "measurand", "phase",
                 "location", "context", "unit", "value"]
MESSAGE_FIELDS = ["transaction", "kind", "sequence", "timestamp", "trigger", "offline",
                  "received_at"]
STATUS_CHANGE_FIELDS = ["station", "connector", "status", "status_detail", "error_code", "info",
                        "timestamp", "received_at"]


def message_row(tx_pk: int, report: TransactionReport, received_at: datetime) -> tuple:
    """A TransactionMessage row in MESSAGE_FIELDS order, for insert_rows."""
    return (tx_pk, report.kind, report.sequence, report.timestamp, report.trigger[:50],
            report.offline, received_at)


def sample_rows(station: Station, evse: int, tx_pk: int | None,
                samples: list[Sample]) -> list[tuple]:
    """Rows of MeterSample in SAMPLE_FIELDS order, for insert_rows."""
    return [(station.pk, evse, tx_pk, s.timestamp, s.measurand, s.phase, s.location, s.context,
             s.unit, s.value) for s in samples]


def table_name(model: type[Model]) -> str:
    """The model's table, quoted for the backend."""
    return connection.ops.quote_name(model._meta.db_table)


def _column(alias: str, model: type[Model], name: str) -> str:
    return f"{alias}.{connection.ops.quote_name(model._meta.get_field(name).column)}"


def column_names(alias: str, model: type[Model]) -> Callable[[str], str]:
    """field name → the quoted column of `model`'s field, qualified by the table's alias."""
    return lambda name: _column(alias, model, name)


def model_fields(model: type[Model], *names: str) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


# --- what a batch reads -----------------------------------------------------------------------

@dataclass(slots=True)
class TransactionRow:
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
    meter_start_wh: Decimal | None
    needs_review: bool
    review_note: str
    # Its EVSE's (plausibility's bound); None for a transaction of no EVSE yet.
    max_power_w: int | None


@dataclass(slots=True)
class ConnectorRow:
    pk: int
    status_at: datetime | None


@dataclass(slots=True)
class BatchReads:
    """What a batch's records name, read in one round trip on PostgreSQL (read_for_batch)."""

    connectors: dict[tuple[str, int, int], ConnectorRow] = field(default_factory=dict)
    by_id: dict[tuple[str, str], TransactionRow] = field(default_factory=dict)
    active: dict[tuple[str, int], TransactionRow] = field(default_factory=dict)
    recorded: set[tuple[str, str, int]] = field(default_factory=set)


# The model field of each column of the batch's reads (select_all types their values).
_CONNECTOR_TYPES = (*model_fields(Connector, "id"), *model_fields(Evse, "station", "number"),
                    *model_fields(Connector, "number", "status_at"))
_SEQUENCE_TYPES = (*model_fields(Transaction, "station", "transaction_id"),
                   *model_fields(TransactionMessage, "sequence"))
_TX_TYPES = (*model_fields(Transaction, "id", "station", "transaction_id", "state"),
             *model_fields(Evse, "number"),
             *model_fields(Transaction, "id_token_value", "meter_last_wh", "offline", "started_at",
                           "meter_start_wh", "needs_review", "review_note"),
             *model_fields(Evse, "max_power_w"))


@lru_cache(maxsize=2)
def _batch_sql(vendor: str) -> dict[str, str]:
    """The fixed parts of the batch's reads, each followed by its conditions."""
    t, e = column_names("t", Transaction), column_names("e", Evse)
    c, m = column_names("c", Connector), column_names("m", TransactionMessage)
    return {
        "transactions": (
            f"SELECT {t('id')}, {t('station')}, {t('transaction_id')}, {t('state')},"
            f" {e('number')}, {t('id_token_value')}, {t('meter_last_wh')}, {t('offline')},"
            f" {t('started_at')}, {t('meter_start_wh')}, {t('needs_review')},"
            f" {t('review_note')}, {e('max_power_w')} FROM {table_name(Transaction)} t"
            f" LEFT JOIN {table_name(Evse)} e ON {e('id')} = {t('evse')} WHERE "),
        "connectors": (
            f"SELECT {c('id')}, {e('station')}, {e('number')}, {c('number')}, {c('status_at')}"
            f" FROM {table_name(Connector)} c JOIN {table_name(Evse)} e ON {e('id')} = {c('evse')}"
            " WHERE "),
        "recorded": (
            f"SELECT {t('station')}, {t('transaction_id')}, {m('sequence')}"
            f" FROM {table_name(TransactionMessage)} m JOIN {table_name(Transaction)} t"
            f" ON {t('id')} = {m('transaction')} WHERE "),
        "station": _column("t", Transaction, "station"),
        "tx_id": _column("t", Transaction, "transaction_id"),
        "state": _column("t", Transaction, "state"),
        "started": _column("t", Transaction, "started_at"),
        "evse_station": _column("e", Evse, "station"),
        "evse_number": _column("e", Evse, "number"),
        "sequence": _column("m", TransactionMessage, "sequence"),
    }


def read_for_batch(connectors: set[tuple[str, int, int]], ids: set[tuple[str, str]],
                   evses: set[tuple[str, int]],
                   sequences: set[tuple[str, str, int]]) -> BatchReads:
    """The connectors (station, EVSE number, connector number), the transactions by (station,
    transaction id), the active transactions of (station, EVSE number), and which (station,
    transaction id, sequence number) messages are stored already. Connectors not found are
    missing from the result. Some conditions (stations and numbers apart) take more rows than
    the keys wanted; the rows are matched to the keys here."""
    sql = _batch_sql(connection.vendor)
    queries: dict[str, tuple[str, list, tuple[Field, ...]]] = {}
    if connectors:
        where, params = sql_in(sql["evse_station"], {key[0] for key in connectors})
        queries["connectors"] = (sql["connectors"] + where, params, _CONNECTOR_TYPES)
    if ids:
        pairs, params = _in_pairs(sql["station"], sql["tx_id"], ids)
        queries["by_id"] = (sql["transactions"] + pairs, params, _TX_TYPES)
    if evses:
        stations, params = sql_in(sql["station"], {s for s, _ in evses})
        numbers, more = sql_in(sql["evse_number"], {e for _, e in evses})
        queries["active"] = (sql["transactions"] + f"{stations} AND {numbers}"
                             f" AND {sql['state']} = %s ORDER BY {sql['started']} DESC",
                             params + more + [Transaction.State.ACTIVE], _TX_TYPES)
    if sequences:
        pairs, params = _in_pairs(sql["station"], sql["tx_id"], {(s, t) for s, t, _ in sequences})
        seqs, more = sql_in(sql["sequence"], {n for _, _, n in sequences})
        queries["recorded"] = (sql["recorded"] + f"{pairs} AND {seqs}", params + more,
                               _SEQUENCE_TYPES)
    results = dict(zip(queries, select_all(list(queries.values())), strict=True))

    found = BatchReads()
    for pk, station_id, evse, number, status_at in results.get("connectors", []):
        if (station_id, evse, number) in connectors:
            found.connectors[(station_id, evse, number)] = ConnectorRow(pk, status_at)
    for tx in (TransactionRow(*row) for row in results.get("by_id", [])):
        if (tx.station_id, tx.transaction_id) in ids:
            found.by_id[(tx.station_id, tx.transaction_id)] = tx
    for tx in (TransactionRow(*row) for row in results.get("active", [])):
        # Newest first: an EVSE's most recent active transaction wins.
        if (tx.station_id, tx.evse_number) in evses:
            found.active.setdefault((tx.station_id, tx.evse_number), tx)
    found.recorded = {row for row in results.get("recorded", []) if row in sequences}
    return found


def _in_pairs(station_column: str, id_column: str, keys: set[tuple[str, str]]
              ) -> tuple[str, list]:
    """The condition on transactions named by (station, transaction id), pair by pair. Not
    `station IN (…) AND id IN (…)`: that reads every transaction of the stations named, their
    whole history. On PostgreSQL two array parameters, so the statement's text is the same
    however many."""
    pairs = sorted(keys)
    if connection.vendor == "postgresql":
        return (f"({station_column}, {id_column}) IN"
                " (SELECT * FROM unnest(%s::varchar[], %s::varchar[]))",
                [[s for s, _ in pairs], [t for _, t in pairs]])
    return (f"({station_column}, {id_column}) IN"
            f" (VALUES {', '.join(['(%s, %s)'] * len(pairs))})",
            [value for pair in pairs for value in pair])


# --- what a batch writes ----------------------------------------------------------------------

@dataclass(slots=True)
class BatchRows:
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
            insert_rows(StatusChange, STATUS_CHANGE_FIELDS, self.status_changes)
            insert_rows(TransactionMessage, MESSAGE_FIELDS, self.tx_messages)
            # A retried message's samples collide with the constraint and are skipped.
            insert_rows(MeterSample, SAMPLE_FIELDS, self.samples, ignore_conflicts=True)
            # updated_at: the transaction is alive (abandoned transactions are closed by it).
            _update_each(Transaction, ["meter_last_wh", "offline", "started_at", "needs_review",
                                       "review_note", "updated_at"], self.transactions)
            insert_rows(MessageLog, LOG_FIELDS, self.log)


# --- what one message reads -------------------------------------------------------------------

def connector_row(station_id: str, evse_number: int, connector_number: int
                  ) -> tuple[Connector, Evse, bool] | None:
    """A station's connector by EVSE and connector number, with its EVSE and whether a
    transaction is active on the EVSE (a start there ends it: one read for both)."""
    sql, types = _connector_sql(connection.vendor)
    [rows] = select_all([(sql, [Transaction.State.ACTIVE, station_id, evse_number,
                                connector_number], types)])
    if not rows:
        return None
    *values, evse_busy = rows[0]
    connector, evse = instances((Connector, Evse), values)
    return connector, evse, bool(evse_busy)


@lru_cache(maxsize=2)
def _connector_sql(vendor: str) -> tuple[str, tuple]:
    """Parameters: the active state, the station, the EVSE's number, the connector's."""
    c, e = column_names("c", Connector), column_names("e", Evse)
    x = column_names("x", Transaction)
    columns, fields = columns_of(("c", Connector), ("e", Evse))
    sql = f"""
        SELECT {columns},
          EXISTS (SELECT 1 FROM {table_name(Transaction)} x
                  WHERE {x("evse")} = {e("id")} AND {x("state")} = %s)
        FROM {table_name(Connector)} c
        JOIN {table_name(Evse)} e ON {e("id")} = {c("evse")}
        WHERE {e("station")} = %s AND {e("number")} = %s AND {c("number")} = %s"""
    return sql, (*fields, None)


@dataclass(frozen=True, slots=True)
class TokenChecks:
    """A card with its organization, and what authorizing it at a station depends on."""

    token: IdToken
    limited_to_sites: bool
    allowed_here: bool
    site_admits: bool  # the card's organization owns the station's site or has its agreement
    charging_elsewhere: bool


def token_with_checks(site_id: int | None, station_id: str, value: str) -> TokenChecks | None:
    """The card of `value` with the checks the database computes with it: is it limited to
    some sites; is this station's site one of them; does the site admit the card's
    organization (owner, or an agreement: accounts.card_use); is the card itself in an active
    transaction at another station."""
    sql, types = _authorize_sql(connection.vendor)
    [rows] = select_all([(sql, [site_id, site_id, site_id, Transaction.State.ACTIVE, station_id,
                                value], types)])
    if not rows:
        return None
    *card, limited_to_sites, allowed_here, site_admits, charging_elsewhere = rows[0]
    token, organization = instances((IdToken, Organization), card)
    token.organization = organization  # None for a card of no organization
    return TokenChecks(token, bool(limited_to_sites), bool(allowed_here), bool(site_admits),
                       bool(charging_elsewhere))


@lru_cache(maxsize=2)
def _authorize_sql(vendor: str) -> tuple[str, tuple]:
    """Parameters: the station's site (three times), the active state, the station, the
    card's value."""
    sites = IdToken.allowed_sites.through
    s, t = column_names("s", sites), column_names("t", IdToken)
    x, o = column_names("x", Transaction), column_names("o", Organization)
    w, a = column_names("w", Site), column_names("a", SiteAccess)
    columns, fields = columns_of(("t", IdToken), ("o", Organization))
    sql = f"""
        SELECT {columns},
          EXISTS (SELECT 1 FROM {table_name(sites)} s WHERE {s("idtoken")} = {t("id")}),
          EXISTS (SELECT 1 FROM {table_name(sites)} s
                  WHERE {s("idtoken")} = {t("id")} AND {s("site")} = %s),
          (EXISTS (SELECT 1 FROM {table_name(Site)} w
                   WHERE {w("id")} = %s AND {w("organization")} = {t("organization")})
           OR EXISTS (SELECT 1 FROM {table_name(SiteAccess)} a
                      WHERE {a("site")} = %s AND {a("organization")} = {t("organization")})),
          EXISTS (SELECT 1 FROM {table_name(Transaction)} x
                  WHERE {x("state")} = %s AND {x("station")} <> %s
                    AND {x("id_token")} = {t("id")})
        FROM {table_name(IdToken)} t
        LEFT JOIN {table_name(Organization)} o ON {o("id")} = {t("organization")}
        WHERE {t("value")} = %s"""
    return sql, (*fields, None, None, None, None)


def transaction_by_key(station_id: str, key: str, value: str, sequence: int | None,
                       related: bool) -> tuple[Transaction, bool] | None:
    """A station's transaction by `key` (transaction_id or start_key), and whether a message of
    `sequence` is stored for it already. With `related`, what pricing reads comes with it: the
    EVSE, the station and its site, the card and its organization."""
    sql, models, types = _transaction_sql(connection.vendor, key, related)
    [rows] = select_all([(sql, [sequence, station_id, value], types)])
    if not rows:
        return None
    *values, sequence_seen = rows[0]
    tx, *joined = instances(models, values)
    if related:
        evse, station, site, token, organization = joined
        station.site = site
        if token is not None:
            token.organization = organization
        tx.evse, tx.station, tx.id_token = evse, station, token
    return tx, bool(sequence_seen)


@lru_cache(maxsize=8)
def _transaction_sql(vendor: str, key: str, related: bool) -> tuple[str, tuple, tuple]:
    """Parameters: the sequence number (None: false), the station, the key's value. Returns
    the SQL, the models whose columns it selects, in order, and each column's field."""
    x, m = column_names("x", Transaction), column_names("m", TransactionMessage)
    models: tuple = (Transaction,)
    joins = ""
    if related:
        models = (Transaction, Evse, Station, Site, IdToken, Organization)
        s, t = column_names("s", Station), column_names("t", IdToken)
        joins = f"""
        LEFT JOIN {table_name(Evse)} e ON {_column("e", Evse, "id")} = {x("evse")}
        JOIN {table_name(Station)} s ON {s("id")} = {x("station")}
        LEFT JOIN {table_name(Site)} si ON {_column("si", Site, "id")} = {s("site")}
        LEFT JOIN {table_name(IdToken)} t ON {t("id")} = {x("id_token")}
        LEFT JOIN {table_name(Organization)} o ON {_column("o", Organization, "id")} = {
            t("organization")}"""
    columns, fields = columns_of(*zip(("x", "e", "s", "si", "t", "o"), models, strict=False))
    sql = f"""
        SELECT {columns},
          EXISTS (SELECT 1 FROM {table_name(TransactionMessage)} m
                  WHERE {m("transaction")} = {x("id")} AND {m("sequence")} = %s)
        FROM {table_name(Transaction)} x{joins}
        WHERE {x("station")} = %s AND {x(key)} = %s"""
    return sql, models, (*fields, None)


def message_sequences(tx_pk: int) -> list[tuple[int | None, str]]:
    """(sequence number, kind) of every message stored for a transaction."""
    m = column_names("m", TransactionMessage)
    [rows] = select_all([(
        f"SELECT {m('sequence')}, {m('kind')} FROM {table_name(TransactionMessage)} m"
        f" WHERE {m('transaction')} = %s",
        [tx_pk], model_fields(TransactionMessage, "sequence", "kind"))])
    return rows


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
    with connection.wrap_database_errors, connection.connection.pipeline():
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
        # Its errors as Django's (a value no column holds is a DataError), like any cursor's.
        with connection.wrap_database_errors, psycopg.RawCursor(connection.connection) as cursor:
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
# them all, none is deallocated and prepared again as sizes come and go; each costs the
# database server some memory per connection, which this bounds.
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
