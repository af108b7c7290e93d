"""The message table: every OCPP action of every version, by direction, and who handles it.

One entry per (OCPP version, action, direction):
- charger → CSMS: the handler (payload → domain service calls → reply payload), in its
  functional block's module (csms/gateway/blocks/);
- CSMS → charger: the builder (a domain command → payload) and the reply reader (the charger's
  answer → the call's outcome, and whatever the domain learns from it), side by side;
- an action a version has but we do not take or send ourselves: declared unsupported, so a
  charger sending it is answered NotSupported, and the coverage page (docs/ocpp-coverage.md,
  written by `manage.py ocpp_coverage`) says so.

The blocks fill the table when csms.gateway's app loads them (csms/gateway/apps.py); the
consumer and the domain's commands (through VersionProtocol) read it, and check() holds it to
the `ocpp` library's schemas of 1.6, 2.0.1 and 2.1, at start-up and in the tests.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from csms.gateway import frames
from csms.gateway.frames import CALL, CALLRESULT, FrameError
from stations.models import Call, Station
from stations.services.batch import Batch
from stations.services.commands import Command, CommandError, MessageParts


class Version(StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"
    V21 = "2.1"


# The versions a charger may negotiate on the endpoint, newest first.
SPOKEN = tuple(Version(version) for version in frames.SUBPROTOCOLS.values())
# Where a version that shares 2.0.1's messages says the same thing the same way.
V201_AND_V21 = (Version.V201, Version.V21)
EVERY_VERSION = tuple(Version)


class Direction(StrEnum):
    FROM_CHARGER = "charger → CSMS"
    TO_CHARGER = "CSMS → charger"


@dataclass(slots=True)
class Context:
    """What a handler knows of the connection its message came on, and the batch of many
    chargers' messages its records join (csms/gateway/writer.py)."""

    station: Station
    batch: Batch


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What a reply reader knows: the station that answered, to which call, and what the call
    said (in clear: the Call row keeps its secrets masked once sent). The version is the
    reader's own: a reader is registered per version."""

    station: Station
    call_id: int
    request: dict


Handler = Callable[[Context, dict], dict]
Builder = Callable[[Any], dict]
ReplyReader = Callable[[ReplyContext, dict], str]

# Reply statuses that mean "the charger will do it" (Reset "Scheduled", Unlock "Unlocked", ...);
# a reply without a status (GetConfiguration's, GetVariables') is an answer, so accepted.
_WILL_DO = {"Accepted", "Unlocked", "Scheduled", "RebootRequired"}


def status_reader(context: ReplyContext, payload: dict) -> str:
    """The outcome of a call whose reply says only whether the charger does it."""
    return (Call.Status.ACCEPTED if payload.get("status", "Accepted") in _WILL_DO
            else Call.Status.REJECTED)


@dataclass(slots=True)
class Entry:
    version: str
    action: str
    direction: Direction
    block: str  # the module of the functional block that owns the action
    handler: Handler | None = None
    # The domain commands said as this action (several may be: GetConfiguration asks for a
    # local list's limits as it will for any configuration), each with its builder.
    builders: dict[type[Command], Builder] = field(default_factory=dict)
    read: ReplyReader = status_reader
    # A charger may send it before an operator accepted it (OCPP 2.0.1 B02/B03, 1.6 §4.2).
    before_acceptance: bool = False
    note: str = ""  # why an unsupported action is so

    @property
    def supported(self) -> bool:
        return self.handler is not None or bool(self.builders)


def _block_of(function: Callable) -> str:
    return function.__module__.rpartition(".")[2]


def _as_versions(versions: str | Iterable[str]) -> tuple[str, ...]:
    return (versions,) if isinstance(versions, str) else tuple(versions)


@dataclass
class MessageTable:
    entries: dict[tuple[str, str, Direction], Entry] = field(default_factory=dict)
    by_command: dict[tuple[str, type[Command]], Entry] = field(default_factory=dict)
    # The blocks of the builders registered on an action another block owns.
    contributors: dict[tuple[str, str, Direction], set[str]] = field(default_factory=dict)
    # Per version, what the domain needs to know of it (VersionProtocol's attributes).
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # inbound()'s answers: every connection of a version shares one.
    _inbound: dict[str, dict[str, Entry]] = field(default_factory=dict)

    def _add(self, entry: Entry) -> Entry:
        key = (entry.version, entry.action, entry.direction)
        if key in self.entries:
            raise ValueError(f"{entry.action} ({entry.version}, {entry.direction}) is declared "
                             f"twice: by {self.entries[key].block} and by {entry.block}")
        self.entries[key] = entry
        self._inbound.clear()
        return entry

    def handles(self, versions: str | Iterable[str], action: str, *,
                before_acceptance: bool = False) -> Callable[[Handler], Handler]:
        """Register a handler of a charger's `action` in these versions."""

        def register(handler: Handler) -> Handler:
            for version in _as_versions(versions):
                self._add(Entry(version, action, Direction.FROM_CHARGER, _block_of(handler),
                                handler=handler, before_acceptance=before_acceptance))
            return handler

        return register

    def _to_charger(self, version: str, action: str, block: str) -> Entry:
        """The entry of a CSMS → charger action, declared by the first block that names it."""
        key = (version, action, Direction.TO_CHARGER)
        entry = self.entries.get(key)
        if entry is None:
            return self._add(Entry(version, action, Direction.TO_CHARGER, block))
        if entry.block != block:
            self.contributors.setdefault(key, set()).add(block)
        return entry

    def builds(self, versions: str | Iterable[str], action: str,
               command: type[Command]) -> Callable[[Builder], Builder]:
        """Register how `command` is said as `action` in these versions."""

        def register(build: Builder) -> Builder:
            for version in _as_versions(versions):
                if (version, command) in self.by_command:
                    raise ValueError(f"{command.__name__} has two builders in {version}")
                entry = self._to_charger(version, action, _block_of(build))
                entry.builders[command] = build
                self.by_command[(version, command)] = entry
            return build

        return register

    def reads(self, versions: str | Iterable[str],
              action: str) -> Callable[[ReplyReader], ReplyReader]:
        """Register how a charger's answer to `action` is read: the call's outcome, and what
        the domain learns from it (by default, status_reader: did it accept). The block that
        reads an action owns it."""

        def register(read: ReplyReader) -> ReplyReader:
            for version in _as_versions(versions):
                key = (version, action, Direction.TO_CHARGER)
                entry = self.entries.get(key)
                if entry is not None and entry.read is not status_reader:
                    raise ValueError(f"{action} ({version}) has two reply readers")
                if entry is None:
                    entry = self._add(Entry(version, action, Direction.TO_CHARGER,
                                            _block_of(read)))
                elif entry.block != _block_of(read):
                    self.contributors.setdefault(key, set()).add(entry.block)
                    entry.block = _block_of(read)
                entry.read = read
            return read

        return register

    def unsupported(self, versions: str | Iterable[str], direction: Direction,
                    *actions: str, block: str, note: str = "") -> None:
        """Declare actions we do not take (charger → CSMS: answered NotSupported) or do not
        send ourselves (CSMS → charger: only as a raw call, read by its status)."""
        for version in _as_versions(versions):
            for action in actions:
                self._add(Entry(version, action, direction, block.rpartition(".")[2],
                                note=note))

    def not_offered(self, version: str, like: str, block: str,
                    note: str = "not offered on the endpoint yet") -> None:
        """Declare unsupported in `version` every action `block` has in `like`, in the same
        direction: a version not spoken on the endpoint yet has them all."""
        name = block.rpartition(".")[2]
        for (v, action, direction), entry in list(self.entries.items()):
            blocks = {entry.block, *self.contributors.get((v, action, direction), ())}
            if v == like and name in blocks and (version, action, direction) not in self.entries:
                self._add(Entry(version, action, direction, entry.block, note=note))

    def declare(self, version: str, **facts: Any) -> None:
        """What the domain needs of a version (VersionProtocol): facts a block owns."""
        self.facts.setdefault(version, {}).update(facts)

    def inbound(self, version: str) -> dict[str, Entry]:
        """The entries of what a charger of `version` may send, by action (one dict per
        version, shared by its connections)."""
        if version not in self._inbound:
            self._inbound[version] = {
                action: entry for (v, action, direction), entry in self.entries.items()
                if v == version and direction == Direction.FROM_CHARGER}
        return self._inbound[version]

    def outbound(self, version: str, action: str) -> Entry | None:
        return self.entries.get((version, action, Direction.TO_CHARGER))

    def check(self) -> list[str]:
        """Where the table and the `ocpp` library's schemas disagree: an entry without a
        schema, a schema action without an entry, a version without the facts the domain
        asks for. Empty when they agree."""
        problems = []
        for (version, action, direction), entry in sorted(self.entries.items()):
            request = frames.schema_path(CALL, action, version)
            # OCPP 2.1's SEND messages (never answered) have one schema, named for the action.
            sent_only = (request.parent / f"{action}.json").is_file()
            if not request.is_file() and not sent_only:
                problems.append(f"{version} {action} ({direction}, {entry.block}): no schema")
            elif request.is_file() and not frames.schema_path(CALLRESULT, action,
                                                              version).is_file():
                problems.append(f"{version} {action} ({direction}, {entry.block}): no "
                                "response schema")
        for version in Version:
            declared = {action for v, action, _ in self.entries if v == version}
            for action in sorted(frames.known_actions(version) - declared):
                problems.append(f"{version} {action}: in the schemas, not in the table (handle "
                                "it in its block, or declare it unsupported there)")
        for version in SPOKEN:
            missing = set(VersionProtocol.FACTS) - self.facts.get(version, {}).keys()
            if missing:
                problems.append(f"{version}: no block declares {', '.join(sorted(missing))}")
        return problems


TABLE = MessageTable()


class VersionProtocol:
    """The domain's commands.Protocol for one OCPP version, read off the table."""

    FACTS = ("id_token_max_length", "local_list_limits", "message_parts")

    def __init__(self, table: MessageTable, version: str):
        self.table = table
        self.version = version
        facts = table.facts[version]
        self.id_token_max_length: int = facts["id_token_max_length"]
        self.local_list_limits: Mapping[str, tuple[str, str, str]] = facts["local_list_limits"]
        self.message_parts: Mapping[str, MessageParts] = facts["message_parts"]

    def build(self, command: Command) -> tuple[str, dict]:
        entry = self.table.by_command.get((self.version, type(command)))
        if entry is None:
            raise CommandError(f"OCPP {self.version} has no message for {command.description}")
        return entry.action, entry.builders[type(command)](command)

    def check(self, action: str, payload: dict) -> None:
        if action not in frames.known_actions(self.version):
            raise CommandError(f"OCPP {self.version} has no action {action[:50]!r}")
        if (self.version, action, Direction.TO_CHARGER) not in self.table.entries:
            raise CommandError(f"In OCPP {self.version}, {action} is a message from chargers")
        try:
            frames.validate(CALL, action, payload, self.version)
        except FrameError as error:
            raise CommandError(
                f"{action} is not valid for OCPP {self.version}: "
                f"{frames.error_code(error.kind, self.version)}: {error.description}"
            ) from None


def checked(table: MessageTable) -> MessageTable:
    """The table, if it agrees with the schemas; otherwise the server does not start."""
    problems = table.check()
    if problems:
        raise ImproperlyConfigured("The OCPP message table disagrees with the ocpp library's "
                                   "schemas:\n  " + "\n  ".join(problems))
    return table


def block_modules() -> list[str]:
    """The names of the block modules (csms/gateway/blocks/), for the coverage page and tests."""
    folder = Path(__file__).parent / "blocks"
    return sorted(path.stem for path in folder.glob("*.py") if not path.stem.startswith("_"))
