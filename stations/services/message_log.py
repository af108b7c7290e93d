"""Frames the message log keeps outside a batch of charger messages: what we answered with a
CALLERROR, our calls to chargers, and their replies. (A batch logs its own frames with its
other rows: stations/services/batch.py.)"""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from accounts import card_use
from accounts.audit import mask
from stations import events
from stations.models import MessageLog, Station

Direction = MessageLog.Direction
MessageType = MessageLog.MessageType


def error_record(station: Station, message_id: str, error: tuple[str, str],
                 received: tuple[int, str, Any] | None = None) -> None:
    """A CALLERROR (code, description) we answered a charger with, after the frame it answers
    when there is one to keep: (message type, action, payload); UNREADABLE with the frame's
    text for a frame that could not be read as one."""
    rows = []
    if received is not None:
        message_type, action, payload = received
        rows.append(MessageLog(station=station, direction=Direction.IN,
                               message_type=message_type, message_id=message_id[:100],
                               action=action[:50], payload=mask(payload)))
    rows.append(MessageLog(station=station, direction=Direction.OUT,
                           message_type=MessageType.CALLERROR, message_id=message_id[:100],
                           payload=list(error)))
    MessageLog.objects.bulk_create(rows)
    events.publish(events.FRAMES_LOGGED, station.pk)


def frame_record(station: Station, direction: str, message_type: int, message_id: str,
                 action: str, payload: Any) -> None:
    """One frame: a call we sent, or a charger's reply to one; secrets in it (a new charger
    password) masked as the audit log masks them."""
    MessageLog.objects.create(station=station, direction=direction, message_type=message_type,
                              message_id=message_id, action=action, payload=mask(payload))
    events.publish(events.FRAMES_LOGGED, station.pk)


def hidden_cards(user: AbstractBaseUser, frames: Iterable[MessageLog]) -> set[str]:
    """The card numbers in these frames that the user may not see (masked where shown:
    accounts.card_use.mask_in), read at once for a page of the log. A frame names a card in
    words that differ by message and version, so every string of it is a candidate."""
    found: set[str] = set()
    for frame in frames:
        card_use.strings_in(frame.payload, found)
    return card_use.hidden_values(user, found)
