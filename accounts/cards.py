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


# The fields an import row sets besides the card number; an empty cell leaves a card's as is.
ROW_FIELDS = ("token_type", "status", "holder", "group", "expires_at", "allowed_sites")


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    data: CardData
    given: frozenset[str]  # the fields of ROW_FIELDS whose cells were not empty


def row_read(header: list[str], row: list[str], sites: dict[str, list[int]]) -> ImportRow:
    """One line of an import file, checked (line number left to the caller: 0)."""
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
    given = frozenset(name for name in ROW_FIELDS if cells.get(name, ""))
    return ImportRow(0, data, given)


def _view(token: IdToken, names: Iterable[str]) -> dict:
    """Those of the fields an import may change of a card, as JSON values (compared with a
    stored list of changes)."""
    view = {"token_type": token.token_type, "status": token.status, "holder": token.holder,
            "group": token.group, "expires_at": _utc(token.expires_at)}
    if "allowed_sites" in names:
        view["allowed_sites"] = sorted(site.pk for site in token.allowed_sites.all())
    return {name: view[name] for name in names}


def _utc(moment: datetime | None) -> str | None:
    """One spelling per instant, so that equal expiries compare equal and later ones greater."""
    return moment.astimezone(UTC).isoformat() if moment else None


def row_changes(token: IdToken, row: ImportRow, visible_sites: set[int]) -> dict[str, list]:
    """{field: [before, after]} for what the row changes of an existing card: only the fields
    it gives (an empty cell changes nothing), and among allowed sites only those the importer
    sees (the others stay)."""
    names = [name for name in ROW_FIELDS if name in row.given]
    before = _view(token, names)
    after = {"token_type": row.data.token_type, "status": row.data.status,
             "holder": row.data.holder, "group": row.data.group,
             "expires_at": _utc(row.data.expires_at)}
    if "allowed_sites" in names:
        after["allowed_sites"] = sorted(
            {site for site in before["allowed_sites"] if site not in visible_sites}
            | set(row.data.allowed_sites))
    return {name: [before[name], after[name]] for name in names if before[name] != after[name]}


def widens(changed: dict[str, list]) -> bool:
    """Whether the change lets the card charge where or when it could not: unblocked,
    expiring later or never, fewer site limits."""
    if "status" in changed and changed["status"][1] == Status.ACCEPTED:
        return True
    if "expires_at" in changed:
        before, after = changed["expires_at"]
        if before is not None and (after is None or after > before):
            return True
    if "allowed_sites" in changed:
        before, after = changed["allowed_sites"]
        if before and (not after or not set(after) <= set(before)):
            return True
    return False


def import_run(import_id: int) -> str:
    """Read the file; if it changes existing cards, list the changes and wait for a person to
    confirm them (the job's REVIEW state); otherwise, or once confirmed, import the rows in
    batches, committing the counts after each so the page shows progress.

    Re-importing the same file changes nothing (every row comes out unchanged); a row whose
    card belongs to another organization, that repeats an earlier row, or whose card changed
    since the listed changes were confirmed, is rejected."""
    job = CardImport.objects.select_related("organization", "created_by").filter(
        pk=import_id).first()
    if job is None or job.state != CardImport.State.QUEUED:
        return job.state if job else "gone"
    CardImport.objects.filter(pk=job.pk).update(state=CardImport.State.RUNNING)
    user = job.created_by
    header, rows = _read(job.content)
    sites: dict[str, list[int]] = {}
    for site in access.sites_for(user).only("pk", "name") if user else Site.objects.none():
        sites.setdefault(site.name.lower(), []).append(site.pk)
        sites.setdefault(str(site.pk), []).append(site.pk)
    visible = {pk for found in sites.values() for pk in found}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    try:
        parsed, rejections = _parse(header, rows, sites)
        if job.confirmed_at is None:
            changes = _changes(job, user, parsed, visible)
            if changes:
                CardImport.objects.filter(pk=job.pk).update(
                    state=CardImport.REVIEW, changes=changes, rejections=rejections,
                    rejected=len(rejections))
                return CardImport.REVIEW
        listed = {change["value"]: change["changed"] for change in job.changes}
        for start in range(0, len(parsed), BATCH):
            with transaction.atomic():
                _import_batch(job, user, parsed[start:start + BATCH], visible, listed, counts,
                              rejections)
                counts["rejected"] = len(rejections)
                CardImport.objects.filter(pk=job.pk).update(
                    processed=min(start + BATCH, len(parsed)) + len(rows) - len(parsed),
                    rejections=rejections, **counts)
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
                                                    processed=len(rows),
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


def _parse(header: list[str], rows: list[list[str]],
           sites: dict[str, list[int]]) -> tuple[list[ImportRow], list[dict]]:
    value_at = header.index("value")
    seen: dict[str, int] = {}
    parsed: list[ImportRow] = []
    rejections: list[dict] = []
    for line, row in enumerate(rows, start=2):
        try:
            read = row_read(header, row, sites)
            if read.data.value in seen:
                raise CardError(f"Repeats the card number of line {seen[read.data.value]}.")
            seen[read.data.value] = line
            parsed.append(ImportRow(line, read.data, read.given))
        except CardError as error:
            value = row[value_at] if value_at < len(row) else ""
            rejections.append({"line": line, "value": value.strip()[:40], "reason": str(error)})
    return parsed, rejections


def _writable(job: CardImport, user: AbstractBaseUser | None, token: IdToken) -> bool:
    # The importer may write the import's organization's cards (checked when it started).
    return (token.organization_id == job.organization_id and user is not None
            and access.may_manage_id_tokens_of(user, job.organization_id))


def _changes(job: CardImport, user: AbstractBaseUser | None, parsed: list[ImportRow],
             visible: set[int]) -> list[dict]:
    """The changes the rows make to existing cards the importer may write, in line order."""
    changes = []
    for start in range(0, len(parsed), BATCH):
        batch = parsed[start:start + BATCH]
        existing = {t.value: t for t in IdToken.objects.filter(
            value__in=[row.data.value for row in batch]).prefetch_related("allowed_sites")}
        for row in batch:
            token = existing.get(row.data.value)
            if token is None or not _writable(job, user, token):
                continue
            if changed := row_changes(token, row, visible):
                changes.append({"line": row.line, "value": token.value, "changed": changed,
                                "widens": widens(changed)})
    return changes


def _import_batch(job: CardImport, user: AbstractBaseUser | None, batch: list[ImportRow],
                  visible: set[int], listed: dict[str, dict], counts: dict,
                  rejections: list) -> None:
    existing = {t.value: t for t in IdToken.objects.filter(
        value__in=[row.data.value for row in batch]).prefetch_related("allowed_sites")}
    new: list[tuple[IdToken, list[int]]] = []
    changed: list[tuple[IdToken, dict[str, list]]] = []
    for row in batch:
        data, token = row.data, existing.get(row.data.value)
        if token is None:
            new.append((IdToken(value=data.value, token_type=data.token_type,
                                status=data.status, holder=data.holder, group=data.group,
                                expires_at=data.expires_at,
                                organization_id=job.organization_id), data.allowed_sites))
            continue
        if not _writable(job, user, token):
            rejections.append({"line": row.line, "value": data.value,
                               "reason": "This card number is already in use by another "
                                         "organization."})
            continue
        difference = row_changes(token, row, visible)
        if not difference:
            counts["unchanged"] += 1
            continue
        if listed.get(token.value) != difference:
            rejections.append({"line": row.line, "value": data.value,
                               "reason": "The card changed since the import's changes were "
                                         "listed: import the file again to see them."})
            continue
        for name in difference.keys() - {"allowed_sites"}:
            setattr(token, name, getattr(data, name))
        token.updated_at = timezone.now()
        changed.append((token, difference))
    IdToken.objects.bulk_create([token for token, _ in new], batch_size=BATCH)
    if changed:
        IdToken.objects.bulk_update([token for token, _ in changed],
                                    [*ROW_FIELDS[:-1], "updated_at"], batch_size=BATCH)
    _sites_set([(token, sites) for token, sites in new if sites]
               + [(token, difference["allowed_sites"][1]) for token, difference in changed
                  if "allowed_sites" in difference])
    _record_changes(user, job, changed)
    counts["created"] += len(new)
    counts["updated"] += len(changed)


def _record_changes(user: AbstractBaseUser | None, job: CardImport,
                    changed: list[tuple[IdToken, dict[str, list]]]) -> None:
    """Each card an import changed is audited on its own, as a change by hand is."""
    AuditEntry.objects.bulk_create([
        AuditEntry(actor=user, actor_name=user.get_username() if user else "",
                   action=(_status_action(token.status) if difference.keys() == {"status"}
                           else Action.CARD_CHANGED),
                   target=f"card:{token.pk}",
                   summary=f"import {job.pk} changed card {token.value}"[:300],
                   details={"changed": difference, "import": job.pk})
        for token, difference in changed
    ], batch_size=BATCH)


def _sites_set(pairs: Iterable[tuple[IdToken, list[int]]]) -> None:
    through = IdToken.allowed_sites.through
    pairs = list(pairs)
    through.objects.filter(idtoken_id__in=[t.pk for t, _ in pairs]).delete()
    through.objects.bulk_create([through(idtoken_id=t.pk, site_id=site)
                                 for t, sites in pairs for site in sites],
                                batch_size=BATCH)


def import_confirm(user: AbstractBaseUser, job: CardImport) -> None:
    """Apply the listed changes (the caller checked the user may write the import's cards)."""
    with transaction.atomic():
        confirmed = CardImport.objects.filter(pk=job.pk, state=CardImport.REVIEW).update(
            state=CardImport.State.QUEUED, confirmed_at=timezone.now())
        if not confirmed:
            raise CardError("This import is not waiting for a confirmation.")
        audit.record(user, Action.CARDS_IMPORTED,
                     f"confirmed the changes of import {job.pk} to {len(job.changes)} cards",
                     target=f"import:{job.pk}",
                     details={"changes": len(job.changes),
                              "widening": sum(change["widens"] for change in job.changes)})
        job.refresh_from_db()
        card_import_queued.send(CardImport, job=job)


def import_discard(user: AbstractBaseUser, job: CardImport) -> None:
    """Leave every card as it is."""
    with transaction.atomic():
        discarded = CardImport.objects.filter(pk=job.pk, state=CardImport.REVIEW).update(
            state=CardImport.DISCARDED, finished_at=timezone.now())
        if not discarded:
            raise CardError("This import is not waiting for a confirmation.")
        audit.record(user, Action.CARDS_IMPORTED, f"discarded import {job.pk}",
                     target=f"import:{job.pk}")


def rejections_csv(job: CardImport) -> str:
    return "".join(csv_lines(["line", "value", "reason"], (
        [rejection["line"], rejection["value"], rejection["reason"]]
        for rejection in job.rejections)))
