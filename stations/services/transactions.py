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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db.models import F, Q
from django.db.transaction import atomic
from django.utils import timezone

from accounts.models import IdToken
from stations import events, persistence, plausibility, signals
from stations.models import (
    DEFAULT_MAX_POWER_W,
    Call,
    MeterSample,
    Station,
    Transaction,
    TransactionMessage,
)
from stations.records import ENERGY_REGISTER, Sample, TransactionReport
from stations.services import commands
from stations.services.connectors import connector_find

# Stop reason of a transaction the CSMS ended, not its charger (csms_end_reason says why).
CLOSED_BY_CSMS = "ClosedByCsms"
# What a transaction created by a message other than its start says until the start comes
# (chargers that number their messages say at the end whether one is missing).
_START_MISSING = "first message received was not the start"
# The review note of a session that ended with messages missing, while the station is asked
# for them (TransactionStatusQuery) and they may still come.
_AWAITING = "waiting for its station's queued messages: "
_NO_START = "start message missing"
_MISSING = "messages missing: sequence numbers "

CsmsEnd = Transaction.CsmsEnd


@dataclass(frozen=True, slots=True)
class TransactionStatusQuery(commands.Command):
    """Does the station still hold messages of this transaction (not sent yet)?"""

    description: ClassVar[str] = "a question about a transaction's queued messages"
    transaction_id: str

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
        tx, evse_busy = _transaction_create(station, report)
    else:
        evse_busy = _transaction_apply(tx, report)
    persistence.insert_rows(TransactionMessage, persistence.MESSAGE_FIELDS,
                            [persistence.message_row(tx.pk, report, timezone.now())])
    _samples_store(station, report.evse or (tx.evse.number if tx.evse else 0), tx,
                   report.samples)
    if report.kind == TransactionMessage.Kind.END or (
            # A late numbered message of an ended transaction may fill its gap.
            report.sequence is not None and tx.state == Transaction.State.COMPLETED):
        _transaction_check_complete(tx)
    if not created or report.kind == TransactionMessage.Kind.END:
        tx.save()  # a new one was inserted whole (_transaction_create)
    if evse_busy:
        _sessions_superseded_close(tx)
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
        return tx.state == Transaction.State.COMPLETED and not tx.csms_end_reason
    return False


def _transaction_create(station: Station, report: TransactionReport
                        ) -> tuple[Transaction, bool]:
    """A transaction inserted with all the report says (one statement; a 1.6 start then
    takes its row id as its transaction id, a second one), and whether another one is active
    on its EVSE."""
    evse = connector = None
    evse_busy = False
    if report.evse:
        connector, evse_busy = connector_find(station, report.evse, report.connector or 1)
        evse = connector.evse
    tx = Transaction(
        station=station, evse=evse, connector=connector,
        # Until we know our row id, a unique placeholder (replaced below).
        transaction_id=report.transaction_id or uuid.uuid4().hex,
        start_key=report.start_key, id_token=_token(report), id_token_value=report.id_token or "",
        id_token_refused=bool(report.id_token) and report.token_refused,
        started_at=report.timestamp, offline=report.offline,
    )
    if report.kind != TransactionMessage.Kind.START and report.sequence is None:
        # The start has not reached us (yet): keep what we know and say so. A charger that
        # numbers its messages (2.0.1) may open a transaction with any of them (its start lost
        # offline): the numbers tell at its end whether anything is missing.
        tx.needs_review = True
        tx.review_note = _START_MISSING
    _transaction_apply(tx, report)
    tx.save()
    if report.transaction_id is None:
        # Chargers that let us number transactions (1.6) get our row id: unique and an integer.
        tx.transaction_id = str(tx.pk)
        tx.save(update_fields=["transaction_id"])
    return tx, evse_busy


def _token(report: TransactionReport) -> IdToken | None:
    """The report's card, with its organization (pricing reads it)."""
    if not report.id_token:
        return None
    if report.token is not None and report.token.value == report.id_token:
        return report.token
    return IdToken.objects.select_related("organization").filter(value=report.id_token).first()


def _transaction_apply(tx: Transaction, report: TransactionReport) -> bool:
    """The report's news on the transaction; returns whether it placed the transaction on an
    EVSE where another one is active."""
    Kind = TransactionMessage.Kind
    evse_busy = False
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
        tx.id_token_refused = report.token_refused
    if report.evse and tx.evse_id is None:
        tx.connector, evse_busy = connector_find(tx.station, report.evse, report.connector or 1)
        tx.evse = tx.connector.evse
    if report.kind == Kind.START:
        # Perhaps after other messages of this transaction.
        tx.started_at = min(tx.started_at, report.timestamp)
        tx.meter_start_wh = report.meter_wh
    if report.kind == Kind.END:
        if tx.csms_end_reason:
            _flag(tx, "closed by the CSMS, then the charger's own end arrived: its values kept")
            tx.csms_end_reason = ""
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
    return evse_busy


def _transaction_check_complete(tx: Transaction, settle: bool = False) -> None:
    """At its end, a transaction's energy is fixed; gaps in its messages are flagged.

    A station that numbers its messages (2.0.1) may still hold the missing ones in its queue:
    it is asked (after this commit, never awaited here), and the session waits for them, held
    for review so that no invoice takes it, until they come (then it is complete), or it is
    settled (`settle`): the station says it holds none (transaction_queue_reported), or the
    wait is over (transactions_close_abandoned). Then the gap is recorded on it; a missing
    start only when the readings do not replace it (no meter start)."""
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
        gap = _gap(sequences, kinds)
        if settle or (gap and tx.messages_awaited_since is None and not _messages_ask(tx)):
            tx.messages_awaited_since = None
            _unflag(tx, _AWAITING)  # settled: the gap, if any, is said as it stands
            if gap and not (gap == _NO_START and tx.meter_start_wh is not None):
                _flag(tx, gap)
                return
            gap = ""
        if not gap:
            tx.messages_awaited_since = None
            _unflag(tx, _AWAITING, _MISSING, _NO_START)  # complete now; energy's notes stay
        else:
            _flag(tx, _AWAITING + gap)
    elif (
        # Without sequence numbers, the start arriving later is all we can check.
        tx.review_note == _START_MISSING
        and TransactionMessage.Kind.START in kinds
    ):
        tx.needs_review, tx.review_note = False, ""


def _gap(sequences: list[int], kinds: set[str]) -> str:
    """What is missing of a transaction's numbered messages ("" nothing): numbers between the
    first and the last, or the start (numbered 0)."""
    missing = set(range(min(sequences), max(sequences) + 1)) - set(sequences)
    if missing:
        return _MISSING + _ranges(sorted(missing))
    if TransactionMessage.Kind.START not in kinds or min(sequences) != 0:
        return _NO_START
    return ""


def _messages_ask(tx: Transaction) -> bool:
    """Ask the station whether it still holds messages of the transaction; it answers after
    this handler's commit (transaction_queue_reported). False: it cannot be asked."""
    try:
        call = commands.send_later(tx.station, TransactionStatusQuery(tx.transaction_id))
    except commands.CommandError:
        return False
    if call.status == Call.Status.NOT_CONNECTED:
        return False
    tx.messages_awaited_since = timezone.now()
    return True


def transaction_queue_reported(station: Station, transaction_id: str,
                               messages_queued: bool) -> None:
    """The station answered whether it still holds messages of a transaction. With none, a
    session waiting for its missing messages is settled; with some, it waits on (they come,
    or the wait ends: transactions_close_abandoned)."""
    if messages_queued:
        return
    tx = (Transaction.objects.select_for_update(of=("self",)).select_related("station__site")
          .filter(station=station, transaction_id=transaction_id,
                  messages_awaited_since__isnull=False).first())
    if tx is not None:
        _gap_settle(tx)


def _gap_settle(tx: Transaction) -> None:
    _transaction_check_complete(tx, settle=True)
    tx.save()
    signals.transaction_changed.send(Transaction, transaction=tx, kind="end", created=False)
    events.publish("transaction.end", tx.station_id, tx.station.site_id, transaction=tx.pk,
                   transaction_id=tx.transaction_id)


def _flag(tx: Transaction, note: str) -> None:
    tx.needs_review = True
    tx.review_note = plausibility.flag(tx.review_note, note)


def _unflag(tx: Transaction, *resolved: str) -> None:
    """Take the problems starting with one of `resolved` off the review note; the session
    needs review as long as any other problem stays."""
    kept = [part for part in tx.review_note.split("; ") if part and not part.startswith(resolved)]
    tx.review_note = "; ".join(kept)
    tx.needs_review = bool(kept)


def _ranges(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:20]) + (" …" if len(numbers) > 20 else "")


def _samples_store(station: Station, evse: int, tx: Transaction | None,
                   samples: list[Sample]) -> None:
    # A retried message's samples collide with the constraint and are skipped: stored once.
    rows = persistence.sample_rows(station, evse, tx.pk if tx else None, samples)
    persistence.insert_rows(MeterSample, persistence.SAMPLE_FIELDS, rows, ignore_conflicts=True)




def _sessions_superseded_close(tx: Transaction) -> None:
    """An EVSE runs one session at a time: a session that started there after another one
    means the older one is over, whatever became of its end (lost in a reboot, never sent after
    a refused start, a server restart in between). Only older ones: a late message of an old
    session never ends a newer one."""
    older = (Transaction.objects.select_for_update(of=("self",)).select_related("station__site")
             .filter(station_id=tx.station_id, evse_id=tx.evse_id, state=Transaction.State.ACTIVE,
                     started_at__lt=tx.started_at)
             .exclude(pk=tx.pk))
    for old in older:
        _transaction_close(old, CsmsEnd.NEW_SESSION,
                           f"session {tx.transaction_id} started on its EVSE at "
                           f"{tx.started_at:%Y-%m-%d %H:%M} UTC")


def refused_sessions_close(freed: list[tuple[str, int, datetime, datetime]]) -> list[int]:
    """Connectors their chargers report free (station id, EVSE number, when it says, when we
    heard it): sessions whose card was refused at their start, started and stored before, are
    over, though their charger never said so (many send no end after a refused start). The
    report before the start (1.6 Preparing) must not end it, whatever the charger's clock says.
    Sessions whose card was accepted wait for their own end: a charger may report its connector
    free before it sends it. Returns the closed sessions' pks."""
    if not freed:
        return []
    where = Q()
    for station_id, evse, at, received in freed:
        where |= Q(station_id=station_id, evse__number=evse, started_at__lte=at,
                   created_at__lt=received)
    refused = (Transaction.objects.select_for_update(of=("self",)).select_related("station__site")
               .filter(where, state=Transaction.State.ACTIVE, id_token_refused=True))
    closed = []
    for tx in refused:
        _transaction_close(tx, CsmsEnd.CONNECTOR_FREE,
                           "its card was refused, then its connector was reported free")
        closed.append(tx.pk)
    return closed


def transactions_close_abandoned(now: datetime | None = None) -> list[int]:
    """Close transactions their charger will not end, flagged for review (never silently);
    and settle those whose wait for their missing messages is over.

    Policy (settings.OCPP):
    - reboot: the station booted after the transaction's last message and REBOOT_GRACE seconds
      have passed since (its queued messages come right after a boot) without a word about it;
    - silence: neither the transaction nor its station was heard of for TRANSACTION_SILENCE.
    The transaction ends at its last reading (meter stop = the last register value, stop time =
    its last sample or message), stop reason CLOSED_BY_CSMS and csms_end_reason saying why. If
    the charger's own end arrives later after all, it replaces ours (see _already_recorded) and
    the flag says so. A session that ended with messages missing and has waited for them
    MESSAGES_WAIT seconds is final with its gap recorded.
    Each transaction is closed in its own database transaction; returns their pks.
    """
    now = now or timezone.now()
    active = Transaction.objects.filter(state=Transaction.State.ACTIVE)
    silent_since = now - timedelta(seconds=settings.OCPP["TRANSACTION_SILENCE"])
    reasons = {
        CsmsEnd.REBOOT: active.filter(
            station__last_boot_at__gt=F("updated_at"),
            station__last_boot_at__lt=now - timedelta(seconds=settings.OCPP["REBOOT_GRACE"])),
        CsmsEnd.SILENCE: active.filter(updated_at__lt=silent_since).filter(
            Q(station__last_seen__lt=silent_since) | Q(station__last_seen=None)),
    }
    closed = []
    for reason, abandoned in reasons.items():
        for pk in list(abandoned.values_list("pk", flat=True)[:500]):
            with atomic():
                # Locked and checked again: a message may have come, another process may be here.
                tx = (abandoned.select_for_update(of=("self",)).select_related("station__site")
                      .filter(pk=pk).first())
                if tx is not None:
                    if reason == CsmsEnd.REBOOT:
                        why = (f"station rebooted at {tx.station.last_boot_at:%Y-%m-%d %H:%M} "
                               "UTC without ending it")
                    else:
                        why = ("nothing heard of it or its station since "
                               f"{tx.updated_at:%Y-%m-%d %H:%M} UTC")
                    _transaction_close(tx, reason, why)
                    closed.append(pk)
    waited = Transaction.objects.filter(
        messages_awaited_since__lt=now - timedelta(seconds=settings.OCPP["MESSAGES_WAIT"]))
    for pk in list(waited.values_list("pk", flat=True)[:500]):
        with atomic():
            tx = waited.select_for_update(of=("self",)).select_related("station__site").filter(
                pk=pk).first()
            if tx is not None:
                _gap_settle(tx)
    return closed


def _transaction_close(tx: Transaction, reason: str, why: str) -> None:
    """End a session its charger did not end, at its last reading, flagged for review with
    why; in the caller's database transaction."""
    times = [tx.started_at, *(t for t in (
        tx.samples.order_by("-timestamp").values_list("timestamp", flat=True).first(),
        tx.messages.order_by("-timestamp").values_list("timestamp", flat=True).first(),
    ) if t is not None)]
    tx.state = Transaction.State.COMPLETED
    tx.stopped_at = max(times)
    tx.stop_reason = CLOSED_BY_CSMS
    tx.csms_end_reason = reason
    tx.meter_stop_wh = tx.meter_last_wh
    known = tx.meter_start_wh is not None and tx.meter_stop_wh is not None
    tx.energy_wh = tx.meter_stop_wh - tx.meter_start_wh if known else None
    _flag(tx, f"closed by the CSMS: {why}; energy "
              + ("to the last reading" if known else "unknown"))
    tx.save()
    log.warning("closed abandoned transaction %s of %s (%s)", tx.transaction_id, tx.station_id,
                reason)
    signals.transaction_changed.send(Transaction, transaction=tx, kind="end", created=False)
    events.publish("transaction.end", tx.station_id, tx.station.site_id, transaction=tx.pk,
                   transaction_id=tx.transaction_id)
