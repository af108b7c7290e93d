"""Charging sessions as their chargers report them, one message at a time: starts, ends, and
the first message of a transaction we did not know; and the transactions their chargers will
never end. The messages of running sessions (updates, meter readings) are stored set-based,
many chargers at once: stations/services/batch.py.

A retried message (a new message id, the same content) is recognised by its business key,
under a database constraint, and changes nothing. Messages may arrive late, offline and out of
order: an update or end may come before its start; the record is completed when it does.
"""

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.db.transaction import atomic
from django.utils import timezone

from accounts.models import IdToken
from stations import events, persistence, plausibility, signals
from stations.models import (
    DEFAULT_MAX_POWER_W,
    MeterSample,
    Station,
    Transaction,
    TransactionMessage,
)
from stations.records import ENERGY_REGISTER, Sample, TransactionReport
from stations.services.connectors import connector_get

# Stop reason of a transaction closed by transactions_close_abandoned, not by its charger.
CLOSED_BY_CSMS = "ClosedByCsms"
# What a transaction created by a message other than its start says until the start comes.
_START_MISSING = "first message received was not the start"

log = logging.getLogger(__name__)


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
    persistence.insert_rows(TransactionMessage, persistence.MESSAGE_FIELDS,
                            [persistence.message_row(tx.pk, report, timezone.now())])
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
    sequence number is stored already: one written-out query (persistence.transaction_by_key).

    Other messages than a start come with what pricing reads (billing's receiver of
    transaction_changed): the EVSE, the station and its site, the card and its organization.
    A start is nearly always new: the transaction alone."""
    if report.transaction_id is not None:
        key, value = "transaction_id", report.transaction_id
    elif report.start_key is not None:
        key, value = "start_key", report.start_key
    else:
        return None, False
    found = persistence.transaction_by_key(station.pk, key, value, report.sequence,
                                           related=report.kind != TransactionMessage.Kind.START)
    return found if found is not None else (None, False)


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
    if report.kind != TransactionMessage.Kind.START:
        # The start has not reached us (yet): keep what we know and say so.
        tx.needs_review = True
        tx.review_note = _START_MISSING
    _transaction_apply(tx, report)
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


def _transaction_apply(tx: Transaction, report: TransactionReport) -> None:
    Kind = TransactionMessage.Kind
    max_power = tx.evse.max_power_w if tx.evse_id is not None else DEFAULT_MAX_POWER_W
    # What cannot be stored is left out (the message log has it); what is implausible is
    # stored as said, and the session marked for review instead of priced.
    report.samples, problem = plausibility.screen(report.samples, max_power)
    if report.meter_wh is not None and (
            meter_problem := plausibility.register_problem(report.meter_wh)) is not None:
        problem = problem or meter_problem
        if not plausibility.storable(report.meter_wh):
            report.meter_wh = None
    if problem is not None:
        _flag(tx, problem)
    if report.offline:
        tx.offline = True
    if report.id_token and not tx.id_token_value:
        tx.id_token_value = report.id_token
        tx.id_token = _token(report)
    if report.evse and tx.evse_id is None:
        tx.connector = connector_get(tx.station, report.evse, report.connector or 1)
        tx.evse = tx.connector.evse
    if report.kind == Kind.START:
        # Perhaps after other messages of this transaction.
        tx.started_at = min(tx.started_at, report.timestamp)
        tx.meter_start_wh = report.meter_wh
    if report.kind == Kind.END:
        if tx.stop_reason == CLOSED_BY_CSMS:
            _flag(tx, "closed by the CSMS, then the charger's own end arrived: its values kept")
        tx.state = Transaction.State.COMPLETED
        tx.stopped_at = report.timestamp
        tx.stop_reason = report.stop_reason[:50]
        tx.meter_stop_wh = report.meter_wh
    register = [s for s in report.samples if s.measurand == ENERGY_REGISTER and not s.phase]
    if register:
        tx.meter_last_wh = register[-1].value
        if tx.meter_start_wh is None and report.kind == Kind.START:
            tx.meter_start_wh = register[0].value
        if tx.meter_stop_wh is None and report.kind == Kind.END:
            tx.meter_stop_wh = register[-1].value
    elif report.meter_wh is not None:
        tx.meter_last_wh = report.meter_wh
    tx.started_at = min(tx.started_at, report.timestamp)
    latest = ((tx.stopped_at, tx.meter_stop_wh) if report.kind == Kind.END
              else (register[-1].timestamp, register[-1].value) if register else (None, None))
    # A stop reading below the start is _transaction_check_complete's to say.
    if (problem is None and tx.meter_start_wh is not None and latest[1] is not None
            and not (report.kind == Kind.END and latest[1] < tx.meter_start_wh)
            and (problem := plausibility.rise_problem((tx.started_at, tx.meter_start_wh),
                                                      latest, max_power)) is not None):
        _flag(tx, problem)


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
    messages = persistence.message_sequences(tx.pk)
    sequences = [sequence for sequence, _ in messages if sequence is not None]
    kinds = {kind for _, kind in messages}
    if sequences:
        missing = set(range(min(sequences), max(sequences) + 1)) - set(sequences)
        if missing or TransactionMessage.Kind.START not in kinds or min(sequences) != 0:
            _flag(tx, "messages missing: sequence numbers " + _ranges(sorted(missing)) if missing
                  else "start message missing")
    elif (
        # Without sequence numbers, the start arriving later is all we can check.
        tx.review_note == _START_MISSING
        and TransactionMessage.Kind.START in kinds
    ):
        tx.needs_review, tx.review_note = False, ""


def _flag(tx: Transaction, note: str) -> None:
    tx.needs_review = True
    tx.review_note = plausibility.flag(tx.review_note, note)


def _ranges(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:20]) + (" …" if len(numbers) > 20 else "")



def _samples_store(station: Station, evse: int, tx: Transaction | None,
                   samples: list[Sample]) -> None:
    # A retried message's samples collide with the constraint and are skipped: stored once.
    rows = persistence.sample_rows(station, evse, tx.pk if tx else None, samples)
    persistence.insert_rows(MeterSample, persistence.SAMPLE_FIELDS, rows, ignore_conflicts=True)




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


