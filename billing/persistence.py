"""Billing's written-out SQL: the reads that price every session's start, running readings and
end, where building the ORM's queries cost the single ORM thread more than running them. Table
and column names come from the models, quoted by the backend; values are always parameters.
(The charging domain's are in stations/persistence.py, whose statement helpers these use.)"""

from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from django.db import connection

from billing.models import SessionCost, Tariff, TariffAssignment, TariffVersion
from stations.models import Connector, MeterSample, StatusChange, Transaction
from stations.persistence import (
    column_names,
    columns_of,
    instances,
    model_fields,
    select_all,
    sql_in,
    table_name,
)


def tariff_version_at(started_at: datetime, station_id: str, site_id: int | None,
                      customer_id: int | None) -> TariffVersion | None:
    """The version valid at `started_at` of the tariff of the most specific assignment:
    station and customer, site and customer, station, site; with its tariff."""
    sql, types = _version_sql(connection.vendor)
    [rows] = select_all([(sql, [started_at, station_id, site_id, customer_id], types)])
    if not rows:
        return None
    tariff, version = instances((Tariff, TariffVersion), rows[0])
    if version is not None:
        version.tariff = tariff
    return version


@lru_cache(maxsize=2)
def _version_sql(vendor: str) -> tuple[str, tuple]:
    """Parameters: the session's start, its station, the station's site, the customer (None:
    assignments for everyone only). The version's columns are NULL when the tariff has none
    valid then."""
    a, t = column_names("a", TariffAssignment), column_names("t", Tariff)
    v, w = column_names("v", TariffVersion), column_names("w", TariffVersion)
    select_list, types = columns_of(("t", Tariff), ("v", TariffVersion))
    sql = f"""
        SELECT {select_list}
        FROM {table_name(TariffAssignment)} a
        JOIN {table_name(Tariff)} t ON {t("id")} = {a("tariff")}
        LEFT JOIN {table_name(TariffVersion)} v ON {v("id")} = (
          SELECT {w("id")} FROM {table_name(TariffVersion)} w
          WHERE {w("tariff")} = {a("tariff")} AND {w("valid_from")} <= %s
          ORDER BY {w("valid_from")} DESC LIMIT 1)
        WHERE ({a("station")} = %s OR {a("site")} = %s)
          AND ({a("customer")} IS NULL OR {a("customer")} = %s)
        ORDER BY {a("customer")} IS NULL, {a("station")} IS NULL
        LIMIT 1"""
    return sql, types


def register_readings(transaction_id: int, measurand: str) -> list[tuple[datetime, Decimal]]:
    """The session's readings of the whole station's register (no phase, at the outlet), in
    time order."""
    sql, types = _readings_sql(connection.vendor)
    [rows] = select_all([(sql, [transaction_id, measurand], types)])
    return rows


@lru_cache(maxsize=2)
def _readings_sql(vendor: str) -> tuple[str, tuple]:
    s = column_names("s", MeterSample)
    sql = f"""
        SELECT {s("timestamp")}, {s("value")} FROM {table_name(MeterSample)} s
        WHERE {s("transaction")} = %s AND {s("measurand")} = %s AND {s("phase")} = ''
          AND {s("location")} IN ('', 'Outlet')
        ORDER BY {s("timestamp")}, {s("id")}"""
    return sql, model_fields(MeterSample, "timestamp", "value")


def release_facts(tx: Transaction, after: datetime,
                  occupied: str) -> tuple[datetime | None, datetime | None, str]:
    """What says when the car left the session's connector: the first status report after
    `after` that is not `occupied`, the next session's start there, and its status now."""
    sql, types = _released_sql(connection.vendor)
    [[facts]] = select_all([(sql, [
        tx.station_id, tx.connector_id, after, occupied, tx.connector_id, tx.started_at, tx.pk,
        tx.connector_id], types)])
    return facts


@lru_cache(maxsize=2)
def _released_sql(vendor: str) -> tuple[str, tuple]:
    """Parameters: the station, the connector, the moment after which, Occupied; the
    connector, the session's start, the session; the connector."""
    c, x = column_names("c", StatusChange), column_names("x", Transaction)
    k = column_names("k", Connector)
    sql = f"""
        SELECT
          (SELECT MIN({c("timestamp")}) FROM {table_name(StatusChange)} c
           WHERE {c("station")} = %s AND {c("connector")} = %s AND {c("timestamp")} > %s
             AND {c("status")} <> %s),
          (SELECT MIN({x("started_at")}) FROM {table_name(Transaction)} x
           WHERE {x("connector")} = %s AND {x("started_at")} > %s AND {x("id")} <> %s),
          (SELECT {k("status")} FROM {table_name(Connector)} k WHERE {k("id")} = %s)"""
    return sql, (*model_fields(StatusChange, "timestamp"),
                 *model_fields(Transaction, "started_at"), *model_fields(Connector, "status"))


def priced_since(transaction_ids: list[int], since: datetime, state: str) -> set[int]:
    """Of these sessions, those priced after `since` or in `state`. It runs for every batch of
    the gateway's writer: one written-out query."""
    s = column_names("s", SessionCost)
    wanted, params = sql_in(s("transaction"), set(transaction_ids))
    [rows] = select_all([(
        f"SELECT {s('transaction')} FROM {table_name(SessionCost)} s"
        f" WHERE {wanted} AND ({s('priced_at')} > %s OR {s('state')} = %s)",
        [*params, since, state], model_fields(SessionCost, "transaction"))])
    return {pk for (pk,) in rows}
