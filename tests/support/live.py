"""The dashboard's live socket as a page opens it, driven in-process: a communicator with the
user's session cookie and the page's query, what it receives, and the ids of the fragments it
is pushed (what the browser swaps)."""

import asyncio
from html.parser import HTMLParser

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from csms.asgi import application

WAIT = 3  # seconds: generous, a fragment normally follows its event within the 0.2 s pause


def logged_in(user) -> Client:
    """A test client with the user's session, as the browser that opens the page has."""
    client = Client()
    client.force_login(user)
    return client


def session_cookie(user) -> str:
    return logged_in(user).cookies["sessionid"].value


async def socket(user=None, query: str = "page=overview",
                 origin: str = "http://testserver") -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"origin", origin.encode())]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/dashboard/?{query}", headers=headers)


def run(scenario) -> None:
    """One asyncio scenario: the communicator's consumer lives in its loop, and database
    writes through database_sync_to_async publish their events (on commit) into it."""
    asyncio.run(scenario())


class _TopLevel(HTMLParser):
    VOID = {"br", "hr", "img", "input", "link", "meta", "source", "wbr", "col", "area"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.tags: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if self.depth == 0:
            self.tags.append((tag, dict(attrs).get("id", "")))
        if tag not in self.VOID:
            self.depth += 1

    def handle_endtag(self, tag):
        self.depth -= 1


TABLE_PARTS = {"tbody", "thead", "tfoot", "tr", "td", "th"}


def ids(*messages: str) -> list[list[str]]:
    """The ids of each message's top-level elements: what the ws extension swaps.

    A browser parses a message as a template whose first element decides the parser's mode:
    table parts after another element (or the reverse) would be dropped, so none may mix.
    """
    found = []
    for message in messages:
        parser = _TopLevel()
        parser.feed(message)
        kinds = {tag in TABLE_PARTS for tag, _ in parser.tags}
        assert len(kinds) == 1, f"table parts mixed with other elements: {parser.tags}"
        assert all(element_id for _, element_id in parser.tags), parser.tags
        found.append([element_id for _, element_id in parser.tags])
    return found


async def receive(communicator: WebsocketCommunicator, count: int = 1) -> list[str]:
    return [await communicator.receive_from(timeout=WAIT) for _ in range(count)]


async def opened(communicator: WebsocketCommunicator, count: int = 1) -> list[str]:
    connected, _ = await communicator.connect()
    assert connected
    return await receive(communicator, count)
