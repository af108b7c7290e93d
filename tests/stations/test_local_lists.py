"""Keeping chargers' local authorization lists in sync (stations/services/local_lists.py): an
update whose answer was lost is sent again by the periodic resync; the list's state is the
station's, kept when the list is turned off. What the lists' messages say in each version, and
how a charger's answers move the sync on, is the local list block's test
(tests/gateway/blocks/test_local_list.py)."""

import pytest

from accounts.models import AuditEntry
from stations import tasks
from stations.models import Call, LocalListPush, LocalListState, Station
from stations.services import local_lists
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_lost_update_is_sent_again_by_the_periodic_resync(personas, operator, eager):
    station = make_station("LL-LOST", site=personas.site_a, ocpp_version="1.6")
    local_lists.set_enabled(operator, station, True)
    Station.objects.filter(pk=station.pk).update(connected=True)
    LocalListState.objects.filter(station=station).update(sync="sending", version_sent=3)
    call = Call.objects.create(station=station, action="SendLocalList", payload={},
                               status=Call.Status.SENT)
    LocalListPush.objects.create(call=call, station=station, version=3, full=True)
    assert local_lists.stale_station_ids() == []  # its answer may still come
    # Its answer was lost: the call ends in the bulk expiry, which tells nobody.
    Call.objects.filter(pk=call.pk).update(status=Call.Status.TIMEOUT)
    assert local_lists.stale_station_ids() == [station.pk]
    assert tasks.resync_local_lists() == 1
    # The resync asked the (in this test unanswering) charger for its limits first.
    assert Call.objects.filter(station=station, action="GetConfiguration").exists()


# In one rolled-back transaction: the switches' on-commit pushes never run here.
@pytest.mark.django_db
def test_local_list_state_is_kept_per_station(personas, operator):
    station = make_station("KEEP-1", personas.site_a, ocpp_version="1.6", evses=1)
    local_lists.set_enabled(operator, station, True)
    local_lists.set_enabled(operator, station, False)
    assert not LocalListState.objects.get(station=station).enabled
    assert AuditEntry.objects.filter(action="local_list.push").count() == 2
