"""Structured logs: every line knows the station it is about, and can be one JSON object.

The gateway sets `station` when a charger connects; the value follows the consumer's task and
the database thread it hands work to (context variables travel with sync_to_async), so a line
logged anywhere below (services, adapters, the ORM) carries the station id without being told.
`LOG_FORMAT=json` writes one JSON object per line for a log shipper; the default stays plain text.
"""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

station: ContextVar[str] = ContextVar("station", default="")

# Attributes every LogRecord has; anything else was passed in `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class StationFilter(logging.Filter):
    """Adds `station` to every record (empty outside a charger's connection)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "station", ""):
            record.station = station.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry.update({key: value for key, value in vars(record).items()
                      if key not in _STANDARD and not key.startswith("_")})
        if not entry.get("station"):
            entry.pop("station", None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
