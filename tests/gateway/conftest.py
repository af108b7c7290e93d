"""Fixtures of the gateway's tests (the personas come from tests/conftest.py)."""

import pytest

from accounts.models import IdToken


@pytest.fixture
def tokens():
    """Cards of no organization that a charger's messages name: CARD-1 valid, CARD-BLOCKED
    blocked, CARD-OLD expired."""
    IdToken.objects.create(value="CARD-1")
    IdToken.objects.create(value="CARD-BLOCKED", status=IdToken.Status.BLOCKED)
    IdToken.objects.create(value="CARD-OLD", expires_at="2020-01-01T00:00:00Z")
