"""The ID token (RFID card) lifecycle: issue, change, block, unblock, expire, delete, import and
export. The only writers of ID tokens: each writes its audit entry in the same transaction and
announces the change (accounts.signals.id_tokens_changed): the local lists on chargers follow
after commit.

Who may write which card is decided by accounts.access; these functions trust their caller to
have asked (views and the API do), and take the acting user for the audit log.
"""

import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts import access, audit
from accounts.models import AuditEntry, CardImport, IdToken, Organization, Site
from accounts.signals import card_import_queued, id_tokens_changed
from csms.csvfiles import csv_lines, uncell

log = logging.getLogger(__name__)
Action = AuditEntry.Action
Status = IdToken.Status
# OCPP 2.0.1 IdToken: up to 36 printable characters (a 1.6 charger presents at most 20).
VALUE_RE = re.compile(r"^[\x21-\x7e]{1,36}\Z")
# The columns of an import or export file; only "value" is required on import.
COLUMNS = ["value", "token_type", "status", "holder", "group", "expires_at", "allowed_sites"]
# Other headings people use for the card number.
VALUE_ALIASES = {"card", "card_number", "card number", "id_token", "idtoken", "uid", "number"}
BATCH = 500
MAX_IMPORT_BYTES = 10 * 1024 * 1024


class CardError(ValueError):
    """A card that cannot be written as asked; the message says why, for a person."""


@dataclass(slots=True)
class CardData:
    """What a card says, checked: the fields a form, the API or an import row may set."""

    value: str
    token_type: str = IdToken.Type.ISO14443
    status: str = Status.ACCEPTED
    holder: str = ""
    group: str = ""
    expires_at: datetime | None = None
    allowed_sites: list[int] = field(default_factory=list)


def check_value(value: str) -> str:
    value = value.strip()
    if not VALUE_RE.match(value):
        raise CardError("A card number is 1 to 36 printable characters without spaces.")
    return value


def parse_expiry(text: str) -> datetime | None:
    """An ISO date (valid through that day, UTC) or date-time; empty: never expires."""
    text = text.strip()
    if not text:
        return None
    try:
        day = parse_date(text)  # a date alone: the card is good through that day
        moment = datetime.combine(day, time.max, tzinfo=UTC) if day else parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CardError(f"{text[:40]!r} is not a date (YYYY-MM-DD) or date-time.")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _choice(text: str, choices: type, what: str, default: str) -> str:
    text = text.strip()
    if not text:
        return default
    by_lower = {value.lower(): value for value in choices.values}
    if text.lower() not in by_lower:
        raise CardError(f"{what} {text[:30]!r} is not one of {', '.join(choices.values)}.")
    return by_lower[text.lower()]


# --- single cards -------------------------------------------------------------------------------

def _snapshot(token: IdToken) -> dict:
    return {"value": token.value, "token_type": token.token_type, "status": token.status,
            "holder": token.holder, "group": token.group,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "organization": token.organization_id,
            "allowed_sites": sorted(token.allowed_sites.values_list("pk", flat=True))}


def issue(user: AbstractBaseUser, data: CardData,
          organization: Organization | None) -> IdToken:
    with transaction.atomic():
        if IdToken.objects.filter(value=data.value).exists():
            raise CardError(f"Card number {data.value} is already in use.")
        token = IdToken.objects.create(
            value=data.value, token_type=data.token_type, status=data.status,
            holder=data.holder, group=data.group, expires_at=data.expires_at,
            organization=organization,
        )
        token.allowed_sites.set(data.allowed_sites)
        audit.record(user, Action.CARD_ISSUED, f"issued card {token.value}"
                     + (f" to {token.holder}" if token.holder else ""),
                     target=f"card:{token.pk}", details=_snapshot(token))
        id_tokens_changed.send(IdToken)
    return token


def change(user: AbstractBaseUser, token: IdToken, data: CardData,
           organization: Organization | None) -> IdToken:
    """Set every field of the card to data's; allowed sites the user cannot see are kept."""
    with transaction.atomic():
        token = IdToken.objects.select_for_update().get(pk=token.pk)
        before = _snapshot(token)
        if data.value != token.value and IdToken.objects.filter(value=data.value).exists():
            raise CardError(f"Card number {data.value} is already in use.")
        for name in ("value", "token_type", "status", "holder", "group", "expires_at"):
            setattr(token, name, getattr(data, name))
        token.organization = organization
        token.save()
        hidden = set(token.allowed_sites.exclude(pk__in=access.sites_for(user))
                     .values_list("pk", flat=True))
        token.allowed_sites.set(hidden | set(data.allowed_sites))
        after = _snapshot(token)
        changed = {name: [before[name], after[name]] for name in after
                   if before[name] != after[name]}
        if changed:
            action = Action.CARD_CHANGED
            if "status" in changed and len(changed) == 1:
                action = _status_action(token.status)
            audit.record(user, action, f"{_verb(action)} card {token.value}",
                         target=f"card:{token.pk}", details={"changed": changed})
            id_tokens_changed.send(IdToken)
    return token


def _status_action(status: str) -> str:
    return {Status.BLOCKED: Action.CARD_BLOCKED, Status.ACCEPTED: Action.CARD_UNBLOCKED,
            Status.EXPIRED: Action.CARD_EXPIRED}.get(status, Action.CARD_CHANGED)


def _verb(action: str) -> str:
    return {Action.CARD_BLOCKED: "blocked", Action.CARD_UNBLOCKED: "unblocked",
            Action.CARD_EXPIRED: "expired", Action.CARD_CHANGED: "changed"}[action]


def set_status(user: AbstractBaseUser, tokens: QuerySet[IdToken], status: str) -> int:
    """Block, unblock (Accepted) or mark expired many cards at once; returns how many changed."""
    action = _status_action(status)
    with transaction.atomic():
        changing = list(tokens.exclude(status=status).select_for_update().only("pk", "value"))
        IdToken.objects.filter(pk__in=[t.pk for t in changing]).update(
            status=status, updated_at=timezone.now())
        _record_each(user, action, changing)
        if changing:
            id_tokens_changed.send(IdToken)
    return len(changing)


def expire(user: AbstractBaseUser, tokens: QuerySet[IdToken]) -> int:
    """Let cards run out now: they stay on record, and are refused as Expired."""
    now = timezone.now()
    with transaction.atomic():
        changing = list(tokens.exclude(expires_at__lte=now).select_for_update()
                        .only("pk", "value"))
        IdToken.objects.filter(pk__in=[t.pk for t in changing]).update(
            expires_at=now, updated_at=now)
        _record_each(user, Action.CARD_EXPIRED, changing)
        if changing:
            id_tokens_changed.send(IdToken)
    return len(changing)


def _record_each(user: AbstractBaseUser, action: str, tokens: list[IdToken]) -> None:
    verb = _verb(action)
    name = user.get_username() if user.is_authenticated else ""
    AuditEntry.objects.bulk_create([
        AuditEntry(actor=user if user.is_authenticated else None, actor_name=name,
                   action=action, target=f"card:{t.pk}", summary=f"{verb} card {t.value}")
        for t in tokens
    ], batch_size=BATCH)


def delete(user: AbstractBaseUser, token: IdToken) -> None:
    """Remove a card that never charged; one with sessions on record is kept for billing."""
    if token.transactions.exists():
        raise CardError(f"Card {token.value} has charging sessions on record, which are kept "
                        "for billing: block it instead of deleting it.")
    with transaction.atomic():
        details = _snapshot(token)
        target = f"card:{token.pk}"
        token.delete()
        audit.record(user, Action.CARD_DELETED, f"deleted card {details['value']}",
                     target=target, details=details)
        id_tokens_changed.send(IdToken)


# --- export -------------------------------------------------------------------------------------

def export_csv(user: AbstractBaseUser, tokens: QuerySet[IdToken]) -> Iterator[str]:
    """The cards as CSV lines (the import's columns, plus organization): streamed, so ten
    thousand cards need no more memory than one. The export itself is audited."""
    count = tokens.count()
    with transaction.atomic():
        audit.record(user, Action.EXPORT, f"exported {count} cards", target="cards",
                     details={"count": count})
    return _csv_lines(tokens)


def _csv_lines(tokens: QuerySet[IdToken]) -> Iterator[str]:
    rows = tokens.select_related("organization").prefetch_related("allowed_sites")
    return csv_lines([*COLUMNS, "organization", "effective_status"], (
        [token.value, token.token_type, token.status, token.holder, token.group,
         token.expires_at.isoformat() if token.expires_at else "",
         ";".join(site.name for site in token.allowed_sites.all()),
         token.organization.name if token.organization else "", token.effective_status()]
        for token in rows.iterator(chunk_size=BATCH)))


# --- import -------------------------------------------------------------------------------------

def import_start(user: AbstractBaseUser, organization: Organization | None, filename: str,
                 content: bytes) -> CardImport:
    """Check the file as a whole, store it and run the import in the background (after
    commit, by accounts.tasks: it receives card_import_queued)."""
    if len(content) > MAX_IMPORT_BYTES:
        raise CardError(f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardError("The file is not UTF-8 text: save it as CSV (UTF-8).") from None
    header, rows = _read(text)
    if "value" not in header:
        raise CardError("The first line must name the columns, one of them the card number "
                        f"(value). Known columns: {', '.join(COLUMNS)}.")
    with transaction.atomic():
        job = CardImport.objects.create(
            organization=organization, created_by=user if user.is_authenticated else None,
            filename=filename[:200], content=text, total=sum(1 for _ in rows),
        )
        card_import_queued.send(CardImport, job=job)
    return job


def _read(text: str) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(text))
    header = []
    for raw in next(reader, []):
        name = raw.strip().lower().replace("-", "_")
        header.append("value" if name in VALUE_ALIASES else name)
    rows = [[uncell(cell) for cell in row] for row in reader if any(c.strip() for c in row)]
    return header, rows


def _row_data(header: list[str], row: list[str], sites: dict[str, list[int]]) -> CardData:
    if len(row) > len(header):
        raise CardError(f"{len(row)} fields on a line of a file with {len(header)} columns.")
    cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
    data = CardData(value=check_value(cells.get("value", "")))
    data.token_type = _choice(cells.get("token_type", ""), IdToken.Type, "Token type",
                              IdToken.Type.ISO14443)
    data.status = _choice(cells.get("status", ""), Status, "Status", Status.ACCEPTED)
    data.holder = cells.get("holder", "")
    data.group = cells.get("group", "")
    if len(data.holder) > 200 or len(data.group) > 36:
        raise CardError("Holder has at most 200 characters, group at most 36.")
    data.expires_at = parse_expiry(cells.get("expires_at", ""))
    for name in filter(None, (n.strip() for n in cells.get("allowed_sites", "").split(";"))):
        found = sites.get(name.lower(), [])
        if len(found) != 1:
            raise CardError(f"Site {name[:60]!r} is " + (
                "not one of yours." if not found else "ambiguous: give its number instead."))
        data.allowed_sites.append(found[0])
    return data


def import_run(import_id: int) -> str:
    """Import the rows in batches, committing the counts after each so the page shows progress.

    Re-importing the same file changes nothing (every row comes out unchanged); a row whose
    card belongs to another organization, or that repeats an earlier row, is rejected."""
    job = CardImport.objects.select_related("organization", "created_by").filter(
        pk=import_id).first()
    if job is None or job.state != CardImport.State.QUEUED:
        return job.state if job else "gone"
    CardImport.objects.filter(pk=job.pk).update(state=CardImport.State.RUNNING)
    user = job.created_by
    header, rows = _read(job.content)
    known = [c for c in header if c in COLUMNS]
    sites: dict[str, list[int]] = {}
    for site in access.sites_for(user).only("pk", "name") if user else Site.objects.none():
        sites.setdefault(site.name.lower(), []).append(site.pk)
        sites.setdefault(str(site.pk), []).append(site.pk)
    value_at = header.index("value")
    seen: dict[str, int] = {}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    rejections: list[dict] = []
    try:
        for start in range(0, len(rows), BATCH):
            batch = []
            for line, row in enumerate(rows[start:start + BATCH], start=start + 2):
                try:
                    data = _row_data(header, row, sites)
                    if data.value in seen:
                        raise CardError(f"Repeats the card number of line {seen[data.value]}.")
                    seen[data.value] = line
                    batch.append((line, data))
                except CardError as error:
                    value = row[value_at] if value_at < len(row) else ""
                    rejections.append({"line": line, "value": value.strip()[:40],
                                       "reason": str(error)})
            with transaction.atomic():
                _import_batch(job, user, known, batch, counts, rejections)
                counts["rejected"] = len(rejections)
                CardImport.objects.filter(pk=job.pk).update(
                    processed=min(start + BATCH, len(rows)), rejections=rejections, **counts)
    except Exception:
        # A bug, not the file: the page says the import stopped (the lines before stay in);
        # the details go to the log, not to the person.
        log.exception("card import %s failed", job.pk)
        CardImport.objects.filter(pk=job.pk).update(
            state=CardImport.State.FAILED, finished_at=timezone.now(),
            error="Stopped by an internal error after the lines counted above; the operator "
                  "has the details in the server log.")
        return CardImport.State.FAILED
    with transaction.atomic():
        CardImport.objects.filter(pk=job.pk).update(state=CardImport.State.DONE,
                                                    finished_at=timezone.now())
        audit.record(user, Action.CARDS_IMPORTED,
                     f"imported {job.filename or 'a file'}: {counts['created']} new, "
                     f"{counts['updated']} changed, {counts['unchanged']} unchanged, "
                     f"{counts['rejected']} rejected",
                     target=f"import:{job.pk}",
                     details={**counts, "organization": job.organization_id})
        if counts["created"] or counts["updated"]:
            id_tokens_changed.send(IdToken)
    return CardImport.State.DONE


def _import_batch(job: CardImport, user: AbstractBaseUser | None, columns: list[str],
                  batch: list[tuple[int, CardData]], counts: dict, rejections: list) -> None:
    organization_id = job.organization_id
    # The importer may write the import's organization's cards (checked when it started), so
    # may rewrite the ones already there; asked once, not per row.
    may_write = user is not None and access.may_manage_id_tokens_of(user, organization_id)
    existing = {t.value: t for t in IdToken.objects.filter(
        value__in=[data.value for _, data in batch]).prefetch_related("allowed_sites")}
    new: list[tuple[IdToken, CardData]] = []
    changed: list[tuple[IdToken, CardData]] = []
    fields = [c for c in columns if c not in ("value", "allowed_sites")]
    for line, data in batch:
        token = existing.get(data.value)
        if token is None:
            new.append((IdToken(value=data.value, token_type=data.token_type,
                                status=data.status, holder=data.holder, group=data.group,
                                expires_at=data.expires_at, organization_id=organization_id),
                        data))
            continue
        if token.organization_id != organization_id or not may_write:
            rejections.append({"line": line, "value": data.value,
                               "reason": "This card number is already in use by another "
                                         "organization."})
            continue
        differs = [name for name in fields if getattr(token, name) != getattr(data, name)]
        sites_differ = "allowed_sites" in columns and (
            sorted(s.pk for s in token.allowed_sites.all()) != sorted(data.allowed_sites))
        if not differs and not sites_differ:
            counts["unchanged"] += 1
            continue
        for name in differs:
            setattr(token, name, getattr(data, name))
        token.updated_at = timezone.now()
        changed.append((token, data if sites_differ else None))
    IdToken.objects.bulk_create([token for token, _ in new], batch_size=BATCH)
    if changed:
        IdToken.objects.bulk_update([token for token, _ in changed],
                                    [*fields, "updated_at"] if fields else ["updated_at"],
                                    batch_size=BATCH)
    _sites_set([(t, d) for t, d in new] + [(t, d) for t, d in changed if d is not None])
    counts["created"] += len(new)
    counts["updated"] += len(changed)


def _sites_set(pairs: Iterable[tuple[IdToken, CardData]]) -> None:
    through = IdToken.allowed_sites.through
    pairs = list(pairs)
    through.objects.filter(idtoken_id__in=[t.pk for t, _ in pairs]).delete()
    through.objects.bulk_create([through(idtoken_id=t.pk, site_id=site)
                                 for t, d in pairs for site in d.allowed_sites],
                                batch_size=BATCH)


def rejections_csv(job: CardImport) -> str:
    return "".join(csv_lines(["line", "value", "reason"], (
        [rejection["line"], rejection["value"], rejection["reason"]]
        for rejection in job.rejections)))
