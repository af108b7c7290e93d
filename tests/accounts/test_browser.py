"""Cards and local lists in a real browser, as the people of the issue use them: a property
manager keeps a local list on their station, a fleet admin imports a CSV of cards and blocks
one, the simulated charger refuses that card (online and in its local list) while another is
accepted, the station shows its list in sync, a manager of another organization sees none of
it, and the operator finds it all in the audit log.

The server and browser come from tests/support/browser.py (the dashboard's); on the
production path a real Celery worker runs the background work.
"""

import re
import time

import pytest
from playwright.sync_api import expect

from accounts import card_use
from tests.support.browser import Dashboard, orm
from tests.support.personas import PASSWORD, Personas
from tests.support.servers import celery_worker, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = "card_number,holder\nFL-1,Ann\nFL-2,Bob\nFL-3,Cy\nFL 4,Bad number\n"


def log_in(dashboard: Dashboard, username: str):
    page = dashboard.page()
    page.goto(f"{dashboard.server}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


def test_fleet_admin_blocks_a_card_and_the_charger_refuses_it(dashboard: Dashboard,
                                                              personas: Personas, tmp_path):
    base = dashboard.server
    # The fleet's cards charge at site A by agreement with its owner.
    orm(card_use.access_grant, personas.manager, personas.fleet_org, personas.site_a)
    with celery_worker():
        manager = log_in(dashboard, "manager")
        manager.goto(f"{base}/local-lists/STATION-A/")
        manager.get_by_role("button", name="Keep a local list on this station").click()
        expect(manager.locator("#list-state")).to_contain_text("out of sync")

        charger = dashboard.charger("STATION-A")
        sim = charger.charger

        fleet = log_in(dashboard, "fleet")
        fleet.get_by_role("link", name="Cards").click()
        fleet.get_by_role("link", name="Import CSV").click()
        upload = tmp_path / "drivers.csv"
        upload.write_text(CSV)
        fleet.get_by_label("CSV file").set_input_files(upload)
        fleet.get_by_role("button", name="Import").click()
        progress = fleet.locator("#import-progress")
        expect(progress).to_contain_text("Done", timeout=10_000)
        expect(progress).to_contain_text("A card number is 1 to 36 printable characters")

        fleet.goto(f"{base}/cards/?q=FL-")
        fleet.get_by_label("Select FL-3").check()
        fleet.get_by_label("With the ticked cards:").select_option("block")
        clicked = time.monotonic()
        fleet.get_by_role("button", name="Apply").click()
        expect(fleet.locator(".messages")).to_contain_text("1 card blocked.")
        expect(fleet.locator("tr", has_text="FL-3")).to_contain_text("Blocked")

        assert charger.do(sim.authorize("FL-3")) == "Blocked"
        wait_until(lambda: sim.local_list.get("FL-3", {}).get("status") == "Blocked",
                   what="the charger's local list refuses FL-3")
        assert time.monotonic() - clicked < 10
        assert charger.do(sim.authorize("FL-1")) == "Accepted"
        assert sim.local_list["FL-1"]["status"] == "Accepted"

        manager.reload()
        expect(manager.locator("#list-state")).to_contain_text("in sync", timeout=10_000)
        # The fleet's card numbers are the fleet's: the site's manager sees them masked.
        expect(manager.locator("main")).to_contain_text("…")
        expect(manager.locator("main")).not_to_contain_text("FL-3")

        outsider = log_in(dashboard, "outsider")
        expect(outsider.locator("nav")).not_to_contain_text("Cards")
        outsider.goto(f"{base}/local-lists/STATION-A/")
        expect(outsider.locator("body")).not_to_contain_text("FL-3")
        outsider.goto(f"{base}/cards/?q=FL-")
        expect(outsider.locator("body")).not_to_contain_text("FL-1")

        operator = log_in(dashboard, "operator")
        operator.goto(f"{base}/audit/")
        log = operator.locator("table.audit")
        expect(log).to_contain_text("blocked card FL-3")
        expect(log).to_contain_text("imported drivers.csv: 3 new")
        expect(log).to_contain_text("turned on the local list of STATION-A")
