"""Transactions (1.6 Core: StartTransaction, StopTransaction; 2.0.1 E: TransactionEvent):
sessions as their chargers report them. Every transaction message is answered with a
CALLRESULT once stored (a charger retries an error and then discards the message, and with it
billing data), and recognised when retried by its business key, not its message id."""

from ocpp.v16.enums import Action as V16
from ocpp.v201.enums import Action as V201
from ocpp.v201.enums import ReadingContextEnumType as ReadingContext
from ocpp.v201.enums import TransactionEventEnumType as EventType

from accounts.models import IdToken
from billing.services import total_cost
from csms.gateway.blocks.authorization import id_tag_info, id_token_info
from csms.gateway.blocks.meter_values import samples_16, samples_201, to_domain
from csms.gateway.blocks.remote_control import remote_start_token
from csms.gateway.frames import event_time
from csms.gateway.table import TABLE, Context, ReplyContext, Version
from stations.models import Call, TransactionMessage
from stations.records import ENERGY_REGISTER, TransactionReport
from stations.services import batch, transactions
from stations.services.authorization import Authorization, authorize

Kind = TransactionMessage.Kind
_KIND = {EventType.started: Kind.START, EventType.updated: Kind.UPDATE, EventType.ended: Kind.END}
# The register in a Transaction.Begin / Transaction.End sample is the start / stop reading.
_EDGE = {Kind.START: ReadingContext.transaction_begin, Kind.END: ReadingContext.transaction_end}
# The longest part of a 1.6 start's business key (Transaction.start_key holds four and more).
_KEY_PART = 48


@TABLE.handles(Version.V16, V16.start_transaction)
def start_transaction_16(ctx: Context, payload: dict) -> dict:
    # 1.6 message ids are unique per connection only, and a start carries no id of the
    # charger's: its content is the business key that makes a retry recognisable.
    # Each part bounded: an absurd meterStart (an integer of hundreds of digits) still fits.
    start_key = "|".join(str(payload[key])[:_KEY_PART] for key in
                         ("connectorId", "idTag", "timestamp", "meterStart"))
    auth = authorize(ctx.station, payload["idTag"])
    tx, _ = transactions.transaction_report(ctx.station, TransactionReport(
        kind=Kind.START, timestamp=event_time(payload["timestamp"]),
        start_key=start_key, evse=payload["connectorId"], connector=1,
        id_token=payload["idTag"], token=auth.token, token_refused=_refused(auth),
        meter_wh=to_domain(payload["meterStart"], "Wh")[0],
    ))
    return {"transactionId": int(tx.transaction_id), "idTagInfo": id_tag_info(auth)}


@TABLE.handles(Version.V16, V16.stop_transaction)
def stop_transaction_16(ctx: Context, payload: dict) -> dict:
    transactions.transaction_report(ctx.station, TransactionReport(
        kind=Kind.END, timestamp=event_time(payload["timestamp"]),
        transaction_id=str(payload["transactionId"]), id_token=payload.get("idTag"),
        meter_wh=to_domain(payload["meterStop"], "Wh")[0],
        stop_reason=payload.get("reason", "Local"),
        samples=samples_16(payload.get("transactionData", [])),
    ))
    if "idTag" in payload:
        return {"idTagInfo": id_tag_info(authorize(ctx.station, payload["idTag"]))}
    return {}


@TABLE.handles(Version.V201, V201.transaction_event)
def transaction_event_201(ctx: Context, payload: dict) -> dict:
    # Retries get new message ids: (station, transactionId, seqNo) is the business key.
    info = payload["transactionInfo"]
    evse = payload.get("evse", {})
    token = payload.get("idToken", {}).get("idToken")
    # A session the CSMS started remotely is the card's it asked for, named or not.
    remote_token = (remote_start_token(ctx.station, info["remoteStartId"])
                    if token is None and "remoteStartId" in info else None)
    samples = samples_201(payload.get("meterValue", []))
    kind = _KIND[payload["eventType"]]
    edge = _EDGE.get(kind)
    readings = [s.value for s in samples if s.context == edge
                and s.measurand == ENERGY_REGISTER and not s.phase]
    # A TransactionEvent cannot be rejected: an unknown token is stored and answered Invalid.
    auth = authorize(ctx.station, token or remote_token) if token or remote_token else None
    report = TransactionReport(
        kind=kind, timestamp=event_time(payload["timestamp"]),
        transaction_id=info["transactionId"], sequence=payload["seqNo"],
        evse=evse.get("id"), connector=evse.get("connectorId"), id_token=token or remote_token,
        token=auth.token if auth is not None else None,
        token_refused=auth is not None and _refused(auth),
        meter_wh=readings[-1] if readings else None,
        stop_reason=info.get("stoppedReason", "Local" if kind == Kind.END else ""),
        trigger=payload["triggerReason"], offline=payload.get("offline", False),
        samples=samples,
    )
    if kind == Kind.UPDATE:  # the common message: stored with the batch
        batch.transaction_update(ctx.station, report, ctx.batch)
    else:
        tx, _ = transactions.transaction_report(ctx.station, report)
    reply = {} if token is None else {"idTokenInfo": id_token_info(auth)}
    # The final cost, priced and stored with the end in this transaction (billing's receiver).
    if kind == Kind.END and (total := total_cost(tx)) is not None:
        reply["totalCost"] = total
    return reply


def _refused(auth: Authorization) -> bool:
    return auth.status != IdToken.Status.ACCEPTED


@TABLE.builds(Version.V201, V201.get_transaction_status, transactions.TransactionStatusQuery)
def transaction_status_query_201(command: transactions.TransactionStatusQuery) -> dict:
    return {"transactionId": command.transaction_id}


@TABLE.reads(Version.V201, V201.get_transaction_status)
def transaction_status_read_201(ctx: ReplyContext, payload: dict) -> str:
    """E14: messagesInQueue says whether the station still holds messages of the transaction."""
    asked = Call.objects.filter(pk=ctx.call_id).values_list("payload", flat=True).first() or {}
    if "transactionId" in asked:
        transactions.transaction_queue_reported(ctx.station, asked["transactionId"],
                                                payload["messagesInQueue"])
    return Call.Status.ACCEPTED
TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
