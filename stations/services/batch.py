"""What every charger sends all day (heartbeats, status reports, meter readings, transaction
updates), from many chargers at once, stored set-based.

The gateway stores the messages of many chargers in one database transaction (group commit:
csms/gateway/writer.py). Their handlers add records to a Batch, and `Batch.flush()` stores them
all with a few statements per table instead of a few per message, inside the caller's
transaction (stations/persistence.py). Called without a batch, each writer here stores a batch
of one at once: the same reads, rows and writes.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.db.transaction import atomic
from django.utils import timezone

from stations import events, persistence, plausibility, signals
from stations.models import DEFAULT_MAX_POWER_W, Connector, Station, Transaction
from stations.persistence import BatchReads, BatchRows, ConnectorRow, TransactionRow
from stations.records import Readings, Sample, StatusReport, TransactionReport, energy_register
from stations.services.connectors import connector_get
from stations.services.transactions import refused_sessions_close, transaction_report


@dataclass(slots=True)
class Batch:
    seen: list[Station] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    readings: list[Readings] = field(default_factory=list)
    updates: list[tuple[Station, TransactionReport]] = field(default_factory=list)
    # Message-log rows (persistence.LOG_FIELDS order): the gateway logs every frame of the batch.
    log: list[tuple] = field(default_factory=list)

    def flush(self) -> None:
        """Store everything added, inside the caller's transaction; the batch is empty after."""
        now = timezone.now()
        found = _read(self)
        rows = BatchRows(log=self.log)
        rows.seen = {station.pk: (now,) for station in self.seen}
        status_changes = _statuses(self.statuses, found, rows)
        changed = _transactions(self.readings, self.updates, found, rows, now)
        rows.write()
        refused_sessions_close([(r.station.pk, r.evse, r.timestamp, r.received_at or now)
                                for r in self.statuses if r.no_session and not r.of_station])
        # Receivers read what was just written.
        if status_changes:
            signals.connector_status_changed.send(Connector, changes=status_changes)
        if changed:
            signals.transactions_updated.send(Transaction, pks=sorted(changed))
        for station_id in {row[0] for row in self.log}:
            events.publish(events.FRAMES_LOGGED, station_id)
        for records in (self.seen, self.statuses, self.readings, self.updates, self.log):
            records.clear()


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


def station_seen(station: Station, batch: Batch | None = None) -> None:
    """A sign of life (a heartbeat)."""
    with _batch(batch) as pending:
        pending.seen.append(station)


def status_record(station: Station, *, evse: int, connector: int | None, status: str,
                  detail: str = "", error_code: str = "", info: str = "",
                  timestamp: datetime | None = None, no_session: bool = False,
                  batch: Batch | None = None) -> None:
    """A status report; evse 0 (or no connector) is the station as a whole. A late report never
    overwrites a newer one. `no_session`: the charger says no session runs on the connector
    (a session whose card was refused ends there: transactions.refused_sessions_close)."""
    now = timezone.now()
    with _batch(batch) as pending:
        pending.statuses.append(StatusReport(
            station=station, evse=evse, connector=connector, status=status, detail=detail,
            error_code=error_code, info=info, timestamp=timestamp or now,
            no_session=no_session, received_at=now))


def meter_values_record(station: Station, *, evse: int, transaction_id: str | None,
                        samples: list[Sample], batch: Batch | None = None) -> None:
    """Samples outside a transaction message (1.6 MeterValues, 2.0.1 MeterValues): of the
    transaction named, else of the EVSE's active one."""
    with _batch(batch) as pending:
        pending.readings.append(Readings(station=station, evse=evse,
                                         transaction_id=transaction_id, samples=samples))


def transaction_update(station: Station, report: TransactionReport, batch: Batch) -> None:
    """An update of a transaction (2.0.1 TransactionEvent Updated): set-based for a known
    transaction, by transactions.transaction_report for a first message or one that brings the
    transaction's token or EVSE."""
    batch.updates.append((station, report))


def _read(batch: Batch) -> BatchReads:
    """What the batch's records name, read at once; a connector named for the first time is
    created now (the ORM's get-or-creates)."""
    connectors = {(r.station.pk, r.evse, r.connector) for r in batch.statuses
                  if not r.of_station}
    found = persistence.read_for_batch(
        connectors=connectors,
        ids=({(r.station.pk, r.transaction_id) for r in batch.readings
              if r.transaction_id is not None}
             | {(station.pk, report.transaction_id) for station, report in batch.updates}),
        evses={(r.station.pk, r.evse) for r in batch.readings
               if r.transaction_id is None and r.evse},
        sequences={(station.pk, report.transaction_id, report.sequence)
                   for station, report in batch.updates if report.sequence is not None},
    )
    missing = sorted(connectors - found.connectors.keys())
    if missing:
        stations_by_id = {r.station.pk: r.station for r in batch.statuses}
        for station_id, evse, number in missing:
            connector = connector_get(stations_by_id[station_id], evse, number)
            found.connectors[(station_id, evse, number)] = ConnectorRow(
                connector.pk, connector.status_at)
    return found


# --- status ---------------------------------------------------------------------------------

def _statuses(reports: list[StatusReport], found: BatchReads,
              rows: BatchRows) -> list[tuple[int, str, datetime]]:
    """Rows of the reports; returns the connectors' changes (signals.connector_status_changed)."""
    changes = []
    received = timezone.now()
    for report in reports:
        target = None
        if report.of_station:
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

def _transactions(readings: list[Readings], updates: list[tuple[Station, TransactionReport]],
                  found: BatchReads, rows: BatchRows, now: datetime) -> dict[int, TransactionRow]:
    """Rows of the readings and updates; returns the transactions they changed."""
    changed: dict[int, TransactionRow] = {}
    announced = {}
    for r in readings:
        tx = (found.by_id.get((r.station.pk, r.transaction_id)) if r.transaction_id is not None
              else found.active.get((r.station.pk, r.evse)))
        if tx is None:
            samples, _ = plausibility.screen(r.samples, None)
            rows.samples += persistence.sample_rows(r.station, r.evse, None, samples)
            continue
        samples = _screened(tx, r.samples, changed)
        rows.samples += persistence.sample_rows(r.station, r.evse, tx.pk, samples)
        register = energy_register(samples)
        if register is not None and tx.state == Transaction.State.ACTIVE:
            tx.meter_last_wh = register
            changed[tx.pk] = tx
        announced[tx.pk] = (r.station, tx)
    for station, report in updates:
        tx = found.by_id.get((station.pk, report.transaction_id))
        if tx is None or (report.evse and tx.evse_number is None) or (
                report.id_token and not tx.id_token_value) or tx.state != Transaction.State.ACTIVE:
            # What a first message, a late detail or a late message of an ended transaction
            # (it may complete it) brings is the one-message writer's work.
            transaction_report(station, report)
            continue
        key = (station.pk, report.transaction_id, report.sequence)
        if key in found.recorded:
            continue  # a retry: stored already
        found.recorded.add(key)
        rows.tx_messages.append(persistence.message_row(tx.pk, report, now))
        samples = _screened(tx, report.samples, changed)
        rows.samples += persistence.sample_rows(station, report.evse or tx.evse_number or 0,
                                                tx.pk, samples)
        register = energy_register(samples)
        meter_wh = report.meter_wh
        if meter_wh is not None and not plausibility.storable(meter_wh):
            meter_wh = None  # beyond any meter: screened out with the samples it came from
        tx.meter_last_wh = register if register is not None else (
            meter_wh if meter_wh is not None else tx.meter_last_wh)
        tx.offline = tx.offline or report.offline
        tx.started_at = min(tx.started_at, report.timestamp)
        changed[tx.pk] = tx
        announced[tx.pk] = (station, tx)
    rows.transactions = {pk: (tx.meter_last_wh, tx.offline, tx.started_at, tx.needs_review,
                              tx.review_note, now) for pk, tx in changed.items()}
    for station, tx in announced.values():
        events.publish("transaction.update", station.pk, station.site_id, transaction=tx.pk,
                       transaction_id=tx.transaction_id)
    return changed


def _screened(tx: TransactionRow, samples: list[Sample],
              changed: dict[int, TransactionRow]) -> list[Sample]:
    """The samples of a session that can be stored; an implausible one marks the session for
    review (plausibility.py: arithmetic only, on what the batch read already)."""
    max_power = tx.max_power_w if tx.max_power_w is not None else DEFAULT_MAX_POWER_W
    kept, problem = plausibility.session_samples(samples, max_power,
                                                 (tx.started_at, tx.meter_start_wh))
    if problem is not None:
        tx.needs_review = True
        tx.review_note = plausibility.flag(tx.review_note, problem)
        changed[tx.pk] = tx
    return kept
