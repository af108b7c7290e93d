"""News from accounts for the apps above it, sent inside the writer's database transaction
(receivers schedule their own work after commit)."""

from django.dispatch import Signal

# sender=IdToken; some ID tokens were issued, changed, blocked, expired or deleted: the local
# authorization lists kept on chargers may have to follow.
id_tokens_changed = Signal()

# sender=CardImport, job=<CardImport>; a CSV import was stored and waits to be run in the
# background (accounts.tasks runs it after commit).
card_import_queued = Signal()

# sender=User, user_id=<int>; what the user may see changed (a membership was added, changed or
# removed, or they logged out): pages they have open must not go on showing what they saw.
access_changed = Signal()
