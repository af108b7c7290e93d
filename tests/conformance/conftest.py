from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import IdToken
from tests.conformance.octt import World
from tests.support.personas import Personas, make_station


@pytest.fixture
def world(personas: Personas) -> World:
    org = personas.org_a
    return World(
        station=make_station("OCTT-CS", personas.site_a, evses=2),
        operator=personas.operator,
        valid=IdToken.objects.create(value="OCTT-VALID", organization=org),
        blocked=IdToken.objects.create(value="OCTT-BLOCKED", organization=org,
                                       status=IdToken.Status.BLOCKED),
        expired=IdToken.objects.create(value="OCTT-EXPIRED", organization=org,
                                       expires_at=timezone.now() - timedelta(days=1)),
    )
