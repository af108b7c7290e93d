"""The audit log's one writer, and the masking that keeps secrets out of it.

Action functions call record() themselves, inside their own transaction, so an action and its
entry are committed together or not at all. Entries are never changed or deleted
(accounts.models.AuditEntry refuses both).
"""

import json
import re
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from accounts.models import AuditEntry
from csms.csvfiles import csv_lines

Action = AuditEntry.Action
MASK = "••••••"

# Names of fields that hold a secret (charger passwords, AuthorizationKey, API keys, ...).
_SECRET = re.compile(r"pass(word)?|secret|authorization_?key|private|api_?key|credential",
                     re.IGNORECASE)
# Name/value pairs (a setting named by one field, its value in another) whose value is secret.
_NAMED_VALUE = {"key": "value", "name": "value", "variable": "attributeValue"}


def mask(data: Any) -> Any:
    """A copy of data with every secret value replaced by MASK."""
    if isinstance(data, list):
        return [mask(item) for item in data]
    if not isinstance(data, dict):
        return data
    masked = {}
    for key, value in data.items():
        if isinstance(key, str) and _SECRET.search(key) and not isinstance(value, dict | list):
            masked[key] = MASK
        else:
            masked[key] = mask(value)
    for name_field, value_field in _NAMED_VALUE.items():
        name = data.get(name_field)
        if isinstance(name, dict):
            name = name.get("name")
        if isinstance(name, str) and _SECRET.search(name) and value_field in masked:
            masked[value_field] = MASK
    return masked


def record(actor: AbstractBaseUser | None, action: str, summary: str, *, target: str = "",
           details: dict | None = None) -> AuditEntry:
    """Append one entry; details are masked before they are stored."""
    person = actor if actor is not None and actor.is_authenticated else None
    return AuditEntry.objects.create(
        actor=person, actor_name=person.get_username() if person else "",
        action=action, target=target[:120], summary=summary[:300],
        details=mask(details or {}),
    )


def entries(*, actor: str = "", action: str = "", target: str = "", text: str = "",
            since=None, until=None) -> QuerySet[AuditEntry]:
    """The log, newest first, narrowed by the given filters (empty ones are ignored)."""
    found = AuditEntry.objects.all()
    if actor:
        found = found.filter(actor_name__iexact=actor) if actor != "system" else found.filter(
            actor_name="")
    if action:
        # "card" matches every card.* action.
        found = found.filter(Q(action=action) | Q(action__startswith=f"{action}."))
    if target:
        found = found.filter(target__icontains=target)
    if text:
        found = found.filter(summary__icontains=text)
    if since is not None:
        found = found.filter(at__gte=since)
    if until is not None:
        found = found.filter(at__lt=until)
    return found


def export_csv(actor: AbstractBaseUser, found: QuerySet[AuditEntry]) -> Iterator[str]:
    """The entries as CSV lines, streamed; the export is itself recorded first."""
    record(actor, Action.EXPORT, f"exported {found.count()} audit entries", target="audit")
    return _lines(found)


def _lines(found: QuerySet[AuditEntry]) -> Iterator[str]:
    return csv_lines(["at", "actor", "action", "target", "summary", "details"], (
        [entry.at.isoformat(), entry.actor_name or "system", entry.action, entry.target,
         entry.summary, json.dumps(entry.details)]
        for entry in found.iterator(chunk_size=1000)))
