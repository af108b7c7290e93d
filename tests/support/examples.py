"""What each block's test module (tests/gateway/blocks/test_<block>.py) gives the table's own
test (tests/gateway/test_message_table.py): an example of every message its block handles or
sends, per version, so that every entry of the message table is reached on a real socket.

    EXAMPLES = Examples(
        received={("1.6", "Heartbeat"): {}},                           # charger → CSMS payloads
        sent={("1.6", commands.Reset): (commands.Reset(hard=True),     # a domain command and
                                        {"status": "Accepted"})},      # the charger's answer
    )
"""

from dataclasses import dataclass, field

from stations.services.commands import Command


@dataclass(frozen=True)
class Examples:
    received: dict[tuple[str, str], dict] = field(default_factory=dict)
    sent: dict[tuple[str, type[Command]], tuple[Command, dict]] = field(default_factory=dict)

