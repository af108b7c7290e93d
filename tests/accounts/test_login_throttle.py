"""People's logins are throttled per account and address, audited, and say why."""

import pytest
from django.test import Client

from accounts import people
from accounts.models import AuditEntry
from tests.support.personas import PASSWORD

LOGIN = "/accounts/login/"


TRIED = [(username, address) for username in ("operator", "manager", "nobody-here")
         for address in ("203.0.113.44", "203.0.113.45", "203.0.113.46", "198.51.100.8")]


@pytest.fixture(autouse=True)
def _limit(settings):
    """The documented defaults; the counts start afresh (a shared Redis keeps them)."""
    settings.LOGIN_FAILURE_LIMIT = 5
    settings.LOGIN_FAILURE_WINDOW = 900
    yield
    for username, address in TRIED:
        people.login_succeeded(username, address)


def attempt(client: Client, username: str, password: str) -> str:
    """A login through the page; returns where it led ("" when the page answered itself)."""
    response = client.post(LOGIN, {"username": username, "password": password})
    if response.status_code == 302:
        return response.headers["Location"]
    assert response.status_code == 200
    return response.content.decode()


def test_thirty_wrong_passwords_then_the_right_one_does_not_log_in(personas, operator):
    from_there = Client(REMOTE_ADDR="203.0.113.44")
    pages = [attempt(from_there, "operator", "not-the-password") for _ in range(30)]
    assert all("do not match" in page for page in pages[:5])
    assert all("Too many failed logins" in page for page in pages[5:])
    page = attempt(from_there, "operator", PASSWORD)
    assert "Too many failed logins for this account from your address" in page
    assert "15 minutes" in page
    assert "_auth_user_id" not in from_there.session
    # The owner elsewhere, and other accounts from that address, still log in.
    assert attempt(Client(REMOTE_ADDR="198.51.100.8"), "operator", PASSWORD) == "/"
    assert attempt(Client(REMOTE_ADDR="203.0.113.44"), "manager", PASSWORD) == "/"


def test_the_limit_is_the_setting_and_its_reach_is_audited_once(personas, operator):
    from_there = Client(REMOTE_ADDR="203.0.113.45")
    for _ in range(4):
        assert "do not match" in attempt(from_there, "operator", "wrong-guess")
    assert attempt(from_there, "operator", PASSWORD) == "/"  # a success starts the count over
    from_there.logout()
    for _ in range(5):
        assert "do not match" in attempt(from_there, "operator", "wrong-guess")
    for _ in range(3):
        assert "Too many failed logins" in attempt(from_there, "operator", PASSWORD)
    (entry,) = AuditEntry.objects.filter(action="login.blocked")
    assert entry.target == f"user:{operator.pk}"
    assert entry.details["address"] == "203.0.113.45" and entry.details["failures"] == 5
    assert "wrong-guess" not in str(entry.details) + entry.summary


def test_unknown_accounts_are_throttled_too(personas):
    from_there = Client(REMOTE_ADDR="203.0.113.46")
    for _ in range(5):
        attempt(from_there, "nobody-here", "guess")
    assert "Too many failed logins" in attempt(from_there, "nobody-here", "guess")
    assert AuditEntry.objects.get(action="login.blocked").target == "login:nobody-here"


def test_the_admin_login_is_throttled_and_says_so(personas, operator):
    from_there = Client(REMOTE_ADDR="203.0.113.44")
    for _ in range(5):
        from_there.post("/admin/login/", {"username": "operator", "password": "wrong-guess"})
    page = from_there.post("/admin/login/", {"username": "operator", "password": PASSWORD})
    assert page.status_code == 200
    assert "Too many failed logins for this account" in page.content.decode()
