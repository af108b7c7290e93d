"""Forms that send a person back (`next=`) send them only to pages of this site."""

import pytest

OFF_SITE = ["https://evil.example/phish", "//evil.example/", "http://testserver.evil.example/",
            "javascript:alert(1)", "https:///evil.example", "\\\\evil.example"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_a_station_action_never_redirects_off_site(client, operator, station_a, target):
    client.force_login(operator)
    answer = client.post(f"/stations/{station_a.pk}/actions/reset/",
                         {"hard": "false", "next": target})
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/stations/{station_a.pk}/"


@pytest.mark.parametrize("target", OFF_SITE)
def test_a_bulk_card_action_never_redirects_off_site(client, fleet, personas, target):
    client.force_login(fleet)
    answer = client.post("/cards/bulk/", {"card": [personas.fleet_token.pk], "action": "block",
                                          "next": target})
    assert answer.status_code == 302 and answer.headers["Location"] == "/cards/"


def test_next_within_the_site_is_followed(client, operator, fleet, personas, station_a):
    client.force_login(operator)
    answer = client.post(f"/stations/{station_a.pk}/actions/reset/",
                         {"hard": "false", "next": "/sessions/?page=2"})
    assert answer.headers["Location"] == "/sessions/?page=2"
    client.force_login(fleet)
    answer = client.post("/cards/bulk/", {"card": [personas.fleet_token.pk], "action": "block",
                                          "next": "/cards/?q=FLEET"})
    assert answer.headers["Location"] == "/cards/?q=FLEET"
