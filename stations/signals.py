"""In-process hooks for other apps, sent inside the writer's database transaction.

Unlike events (channel layer, after commit, lossy), a receiver here writes in the same
transaction as the change it reacts to: billing prices a session in the transaction that
stores its end, so a charger is answered only once the price is stored too. Receivers must be
quick and must never wait for a charger (use commands.call_enqueue).
"""

from django.dispatch import Signal

# sender=Transaction, transaction=<Transaction>, kind="start"|"update"|"end", created=True when
# this message created the transaction's record (nothing else refers to it yet)
transaction_changed = Signal()

# sender=Transaction, pks=[<Transaction pk>, ...]: new readings of these transactions, stored
# for many chargers at once (stations/services/batch.py); billing prices the running sessions
# now and then.
transactions_updated = Signal()

# sender=Connector, changes=[(<Connector pk>, status, <datetime>), ...]: status reports, stored
# for many chargers at once; billing learns here that a car left a connector (the end of its
# idle time).
connector_status_changed = Signal()

# sender=Call, call=<Call> with its final status; sent when a command's outcome is stored
# (answered, timed out, not connected), except by the bulk expiry of lost calls.
call_completed = Signal()

# sender=Station, station=<Station>; a charger's connection was admitted (what waited for it,
# such as a local list update, may go out now).
station_connected = Signal()

# sender=LocalListState, station_ids=[...] or None for every managed station, countdown=seconds
# or None; these stations' local lists are out of step: their push is scheduled after commit
# (stations.tasks).
local_lists_stale = Signal()
