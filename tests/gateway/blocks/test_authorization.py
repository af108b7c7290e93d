"""Authorization: Authorize in both versions' words, the authorization cache."""

from stations.services.local_lists import CacheClear
from tests.support.examples import Examples

EXAMPLES = Examples(
    received={
        ("1.6", "Authorize"): {"idTag": "CARD-1"},
        ("2.0.1", "Authorize"): {"idToken": {"idToken": "CARD-1", "type": "ISO14443"}},
    },
    sent={
        ("1.6", CacheClear): (CacheClear(), {"status": "Accepted"}),
        ("2.0.1", CacheClear): (CacheClear(), {"status": "Accepted"}),
    },
)
