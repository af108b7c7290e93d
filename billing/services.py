"""Pricing sessions: which tariff applies, what the meter says, when the car left; writes
SessionCost rows. The arithmetic itself is in billing/costing.py.

Called inside the charger's message transaction (stations.signals.transaction_changed): at a
session's start the tariff version is fixed, during it the running cost goes to the charger now
and then, at its end the final cost is stored before the charger is answered.
"""

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction as db
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, Organization
from billing import costing, persistence
from billing.models import SessionCost, TariffVersion, TimeWindow
from stations.models import DEFAULT_MAX_POWER_W, Connector, Transaction
from stations.records import ENERGY_REGISTER
from stations.services import commands

log = logging.getLogger(__name__)
State = SessionCost.State
# The stop reason both OCPP versions give when the cable was pulled out on the car's side.
EV_DISCONNECTED = "EVDisconnected"
NO_ENERGY_NOTE = ("delivered no energy: not billed (the tariff bills only sessions that "
                  "charged)")


def zone_of(tx: Transaction) -> ZoneInfo:
    site = tx.station.site
    try:
        return ZoneInfo(site.time_zone if site else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def customer_of(tx: Transaction) -> Organization | None:
    """Who pays: the organization of the ID token the session was started with."""
    return tx.id_token.organization if tx.id_token_id else None


def version_for(tx: Transaction, customer: Organization | None) -> TariffVersion | None:
    """The version, at the session's start, of the tariff of the most specific assignment:
    station and customer, site and customer, station, site. One query, written once
    (billing.persistence): every session's start and end asked the ORM for two."""
    return persistence.tariff_version_at(tx.started_at, tx.station_id, tx.station.site_id,
                                         customer.pk if customer else None)


def terms_of(version: TariffVersion, zone: ZoneInfo) -> costing.Terms:
    return costing.Terms(
        prices=costing.Prices(version.price_kwh, version.price_minute),
        windows=_windows(version.pk, version.created_at), session_fee=version.session_fee,
        idle_per_minute=version.idle_price_minute,
        idle_grace=timedelta(minutes=version.idle_grace_minutes), min_price=version.min_price,
        max_price=version.max_price, vat_rate=version.vat_rate, zone=zone,
        bills_empty_sessions=version.bills_empty_sessions,
    )


@lru_cache(maxsize=1024)
def _windows(version_id: int, created_at: datetime) -> tuple[costing.Window, ...]:
    """A tariff version's time windows, read once per process: a version and its windows are
    created together and never changed (billing.tariffs.add_version), and every priced
    message of every session asked again. Keyed by the creation time too, so a version number
    a test database hands out again is not mistaken for the old one."""
    return tuple(
        costing.Window(w.label, frozenset(int(d) for d in w.weekdays), w.start, w.end,
                       costing.Prices(w.price_kwh, w.price_minute))
        for w in TimeWindow.objects.filter(version_id=version_id)
    )


def max_power_of(tx: Transaction) -> int:
    """The most the session's EVSE delivers: its readings beyond it are not priced."""
    return tx.evse.max_power_w if tx.evse_id is not None else DEFAULT_MAX_POWER_W


def readings_of(tx: Transaction) -> list[costing.Reading]:
    """The energy register over the session: start reading, samples, stop reading."""
    by_time: dict[datetime, Decimal] = {}
    if tx.meter_start_wh is not None:
        by_time[tx.started_at] = tx.meter_start_wh
    for at, wh in persistence.register_readings(tx.pk, ENERGY_REGISTER):
        by_time.setdefault(at, wh)
    if tx.stopped_at is not None and tx.meter_stop_wh is not None:
        by_time[tx.stopped_at] = tx.meter_stop_wh
    return [costing.Reading(at, wh) for at, wh in sorted(by_time.items())]


def released_at(tx: Transaction, after: datetime) -> datetime | None:
    """When the car left the connector after charging ended; None while it is still there.

    A session that ended because the car was unplugged was left at its end. Otherwise the
    first status report of the connector after `after` that is not Occupied, or the next
    session's start there; with neither, a connector that is not Occupied now was left when
    the session stopped.
    """
    if tx.connector_id is None or tx.stop_reason == EV_DISCONNECTED:
        return tx.stopped_at
    change, following, status = persistence.release_facts(tx, after, Connector.Status.OCCUPIED)
    known = [moment for moment in (change, following) if moment is not None]
    if known:
        return max(min(known), tx.started_at)
    return None if status == Connector.Status.OCCUPIED else tx.stopped_at


def _store(cost: SessionCost, result: costing.Cost) -> None:
    for name in ("energy_wh", "charging_seconds", "idle_seconds", "billable_idle_seconds",
                 "energy_amount", "time_amount", "idle_amount", "session_fee", "cap_adjustment",
                 "net", "vat_rate", "vat_amount", "gross"):
        setattr(cost, name, getattr(result, name))
    cost.breakdown = [part.as_dict() for part in result.parts]


def live_cost(tx: Transaction, now: datetime | None = None) -> costing.Cost | None:
    """The cost so far of a running session, or None when it cannot be priced (no tariff,
    no readings). Nothing is stored."""
    now = now or timezone.now()
    customer = customer_of(tx)
    cost = SessionCost.objects.filter(transaction=tx).select_related("tariff_version").first()
    version = cost.tariff_version if cost and cost.tariff_version else version_for(tx, customer)
    if version is None:
        return None
    readings = readings_of(tx)
    until = max(now, tx.started_at, *(r.at for r in readings[-1:]))  # a charger's clock ahead
    try:
        return costing.compute(terms_of(version, zone_of(tx)), costing.Session(
            tx.started_at, until, tuple(readings), running=True, max_power_w=max_power_of(tx)))
    except costing.Unpriceable:
        return None


def price(tx: Transaction, *, now: datetime | None = None, accepted_by=None,
          new: bool = False) -> SessionCost:
    """Price a session and store the result: running, idle (stopped, car still plugged),
    final, review, or no tariff. A final or billed cost is not priced again, unless a person
    accepts it after review (`accepted_by`). `new`: the session's record was created in this
    database transaction, so it has no cost yet (a query fewer at every session's start)."""
    now = now or timezone.now()
    cost = None if new else (
        SessionCost.objects.select_for_update(of=("self",)).filter(transaction=tx)
        .select_related("tariff_version__tariff").first())
    if cost is not None and (cost.invoice_id is not None or cost.state == State.EXCLUDED
                             or (cost.state == State.FINAL and accepted_by is None)):
        return cost
    customer = customer_of(tx)
    if cost is None:
        cost = SessionCost(transaction=tx)
    if accepted_by is not None:
        cost.reviewed_by = accepted_by
    cost.customer = customer
    cost.tariff_version = cost.tariff_version or version_for(tx, customer)
    cost.priced_at = now
    cost.note = ""
    if cost.tariff_version is None:
        cost.state = State.NO_TARIFF
        cost.note = "no tariff applies to this station, site and customer at the session's start"
        cost.save()
        return cost
    cost.currency = cost.tariff_version.tariff.currency
    terms = terms_of(cost.tariff_version, zone_of(tx))
    running = tx.state == Transaction.State.ACTIVE
    problems = []
    if cost.corrected_energy_wh is not None and not running:
        readings = corrected_readings(tx, cost.corrected_energy_wh)
    else:
        readings = tuple(readings_of(tx))
        if not running and tx.needs_review:
            problems.append(tx.review_note or "the session's messages need a look")
        if not running and (tx.energy_wh is None or tx.meter_stop_wh is None):
            problems.append("energy unknown: no start or stop meter reading")
    state, released = State.RUNNING, None
    until = max(now, tx.started_at, *(r.at for r in readings[-1:]))
    if not running:
        stopped = tx.stopped_at or tx.started_at
        charged_until = costing.charging_end(costing.Session(tx.started_at, stopped, readings))
        released = released_at(tx, charged_until)
        if released is None and not terms.idle_per_minute:
            released = stopped  # no idle fee to wait for: final at the end
        if released is None and cost.state == State.IDLE and now - stopped > costing.IDLE_LIMIT:
            released = charged_until + costing.IDLE_LIMIT
            problems.append("the connector was still reported occupied a day after the "
                            "session: idle time counted for one day")
        state = State.FINAL if released is not None else State.IDLE
        # Still plugged in: the idle time so far, never beyond the day the settling allows.
        until = (max(stopped, released) if released is not None
                 else max(stopped, min(now, charged_until + costing.IDLE_LIMIT)))
    try:
        result = costing.compute(terms, costing.Session(
            tx.started_at, until, readings, released=released, running=running,
            max_power_w=max_power_of(tx)))
    except costing.Unpriceable as error:
        cost.state, cost.note = State.REVIEW, "; ".join([*problems, str(error)])[:200]
        cost.save()
        return cost
    _store(cost, result)
    if result.empty and not problems:
        cost.state, cost.note = State.EXCLUDED, NO_ENERGY_NOTE
        cost.save()
        return cost
    problems += result.problems
    if problems and state == State.FINAL and accepted_by is None and cost.reviewed_by is None:
        state = State.REVIEW
    cost.state = state
    cost.note = "; ".join(problems)[:200]
    if cost.corrected_energy_wh is not None and not problems:
        cost.note = f"energy corrected to {cost.corrected_energy_wh / 1000:.3f} kWh by a person"
    cost.save()
    return cost


def corrected_readings(tx: Transaction, energy_wh: Decimal) -> tuple[costing.Reading, ...]:
    """The register a person's corrected energy stands for: from 0 at the start to the energy
    at the stop, nothing known between (so, by the pricing rule, charging until the stop)."""
    stopped = tx.stopped_at or tx.started_at
    return (costing.Reading(tx.started_at, Decimal(0)), costing.Reading(stopped, energy_wh))


def _decided(cost: SessionCost, user: AbstractBaseUser, action: str, summary: str,
             **details) -> None:
    audit.record(user, action, summary, target=f"session:{cost.transaction_id}", details={
        "state": cost.state, "net": str(cost.net), "gross": str(cost.gross), **details})


def _undecidable(cost: SessionCost) -> None:
    if cost.invoice_id is not None:
        raise ValueError("This session is on an invoice; correct it with a credit note.")
    if cost.transaction.state == Transaction.State.ACTIVE:
        raise ValueError("This session is still running; decide once it has ended.")


def accept(cost: SessionCost, user: AbstractBaseUser) -> SessionCost:
    """A person accepts a session that needed review: billed as priced. A session that cannot
    be priced as it is (its meter data are unusable) is refused, saying why: its energy has to
    be corrected first, or it is not billed."""
    _undecidable(cost)
    with db.atomic():
        priced = price(cost.transaction, accepted_by=user)
        if priced.state not in (State.FINAL, State.IDLE):
            raise ValueError(f"This session cannot be billed as priced ({priced.note}): enter "
                             "the corrected energy, or do not bill it.")
        _decided(priced, user, AuditEntry.Action.SESSION_COST_ACCEPTED,
                 f"accepted session {cost.transaction_id} as priced: {priced.gross} "
                 f"{priced.currency}")
    return priced


def correct_energy(cost: SessionCost, user: AbstractBaseUser, energy_wh: Decimal,
                   reason: str) -> SessionCost:
    """A person enters the energy a session really delivered (the meter rolled over, was
    replaced, reported nonsense); the session is priced with it and billed."""
    _undecidable(cost)
    if energy_wh < 0:
        raise ValueError("The corrected energy cannot be negative.")
    if not reason.strip():
        raise ValueError("Say why the energy is corrected (e.g. meter rollover, value read "
                         "on the charger's display).")
    with db.atomic():
        before = cost.corrected_energy_wh
        metered = cost.transaction.energy_wh
        SessionCost.objects.filter(pk=cost.pk).update(corrected_energy_wh=energy_wh,
                                                      state=State.REVIEW)
        priced = price(cost.transaction, accepted_by=user)
        if priced.state not in (State.FINAL, State.IDLE):
            raise ValueError(f"This session cannot be priced ({priced.note}).")
        _decided(priced, user, AuditEntry.Action.SESSION_COST_CORRECTED,
                 f"corrected the energy of session {cost.transaction_id} to "
                 f"{energy_wh / 1000:.3f} kWh: {priced.gross} {priced.currency}",
                 metered_wh=str(metered), previously_corrected_wh=str(before),
                 corrected_wh=str(energy_wh), reason=reason)
    return priced


def exclude(cost: SessionCost, user: AbstractBaseUser, note: str) -> SessionCost:
    """A person decides a session is not billed (a test, a fault, a goodwill gesture)."""
    if cost.invoice_id is not None:
        raise ValueError("This session is on an invoice; correct it with a credit note.")
    with db.atomic():
        cost.state, cost.reviewed_by = State.EXCLUDED, user
        cost.note = (note or "not billed")[:200]
        cost.save(update_fields=["state", "reviewed_by", "note"])
        _decided(cost, user, AuditEntry.Action.SESSION_COST_EXCLUDED,
                 f"session {cost.transaction_id} not billed: {cost.note}")
    return cost


def total_cost(tx: Transaction) -> Decimal | None:
    """The session's final total including taxes for the charger at its end, or None when
    there is no final price to tell (no tariff, needs review, or idle: the car is still plugged
    in and the idle fee still runs, so the charger hears a running cost instead). A session
    that is not billed (it delivered no energy) costs nothing."""
    cost = SessionCost.objects.filter(transaction=tx).only("state", "gross").first()
    if cost is None:
        return None
    if cost.state == State.FINAL:
        return cost.gross
    if cost.state == State.EXCLUDED:
        return Decimal("0.00")
    return None


def on_transaction_changed(sender, transaction: Transaction, kind: str, created: bool = False,
                           **kwargs) -> None:
    """Receiver of stations.signals.transaction_changed, inside the charger's message
    transaction. A pricing failure must never lose the charger's data: it is logged and the
    session shows up unpriced, priced again by the next message or by `settle`."""
    try:
        with db.atomic():
            if kind == "update" and transaction.state == Transaction.State.ACTIVE:
                _running_costs(_running_due([transaction.pk]))
            else:
                cost = price(transaction, new=created)
                if cost.state == State.IDLE and cost.tariff_version_id:
                    # Not final yet: the charger is told the cost so far, as a running cost.
                    commands.cost_update(transaction, cost.gross)
    except Exception:
        log.exception("pricing %s failed", transaction)


def on_transactions_updated(sender, pks: list[int], **kwargs) -> None:
    """Receiver of stations.signals.transactions_updated (readings of many sessions stored
    together), inside their database transaction; failures as in on_transaction_changed. Most
    of the time no session is due: one query and no savepoint, two round trips less on every
    batch of the gateway's writer. That query writes nothing; if it fails, so does the batch
    (it is stored again message by message), so its error is not caught here."""
    due = _running_due(pks)
    if not due:
        return
    try:
        with db.atomic():
            _running_costs(due)
    except Exception:
        log.exception("pricing sessions %s failed", due[:20])


def on_connector_status(sender, changes: list[tuple[int, str, datetime]], **kwargs) -> None:
    """Receiver of stations.signals.connector_status_changed: a connector no longer occupied
    ends the idle time of its session that stopped with the car still plugged in."""
    freed = [pk for pk, status, _ in changes if status != Connector.Status.OCCUPIED]
    if not freed:
        return
    try:
        with db.atomic():
            waiting = (Transaction.objects.filter(connector_id__in=freed,
                                                  cost__state=State.IDLE)
                       .select_related("station__site", "evse", "id_token"))
            for tx in waiting:
                price(tx)
    except Exception:
        log.exception("pricing after status reports of connectors %s failed", freed[:20])


def _running_due(pks: list[int]) -> list[int]:
    """The sessions not priced within COST_UPDATE_INTERVAL; the others' chargers heard their
    running cost a moment ago. A session that started without a tariff is not due: its tariff
    version is fixed at its start, so pricing it again every interval would find nothing each
    time; its end prices it once more."""
    recent = timezone.now() - timedelta(seconds=settings.BILLING["COST_UPDATE_INTERVAL"])
    fresh = persistence.priced_since(pks, recent, State.NO_TARIFF)
    return [pk for pk in pks if pk not in fresh]


def _running_costs(pks: list[int]) -> None:
    """The sessions priced again, and a running cost sent to their chargers (2.0.1
    CostUpdated)."""
    now = timezone.now()
    for tx in Transaction.objects.filter(pk__in=pks).select_related("station__site", "evse",
                                                                    "id_token"):
        cost = price(tx, now=now)
        if (cost.state == State.RUNNING and cost.tariff_version_id
                and tx.state == Transaction.State.ACTIVE):
            commands.cost_update(tx, cost.gross)
            SessionCost.objects.filter(pk=cost.pk).update(cost_sent_at=now)


def settle(batch: int = 500) -> int:
    """Price again the sessions whose car was still plugged in at their end (the idle fee runs
    until it leaves), and price ended sessions that have no cost yet (a pricing that failed,
    data that arrived late); returns how many were priced. Run every minute by beat."""
    count = 0
    idle = SessionCost.objects.filter(state=State.IDLE).values_list("transaction_id", flat=True)
    unpriced = Transaction.objects.filter(state=Transaction.State.COMPLETED, cost__isnull=True)
    todo = (list(Transaction.objects.filter(pk__in=list(idle[:batch])).select_related("evse"))
            + list(unpriced.select_related("evse")[:batch]))
    for tx in todo:
        with db.atomic():
            price(tx)
        count += 1
    return count
