"""The message log's retention (stations/services/retention.py): old frames deleted in
batches, the rest kept."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stations.models import MessageLog
from stations.services import retention
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)


def test_retention_deletes_old_frames_in_batches_and_keeps_the_rest():
    station = make_station("LOGGED")
    old, new = timezone.now() - timedelta(days=100), timezone.now()
    MessageLog.objects.bulk_create(
        [MessageLog(station=station, direction="in", message_type=2, created_at=old)
         for _ in range(25)]
        + [MessageLog(station=station, direction="in", message_type=2, created_at=new)
           for _ in range(5)])
    with CaptureQueriesContext(connection) as queries:
        assert retention.message_log_prune(90, batch=10) == 25
    assert MessageLog.objects.count() == 5
    # Per batch of 10: one read of the oldest ids, one DELETE; the third batch finds new frames.
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert (statements.count("SELECT"), statements.count("DELETE")) == (3, 3)
