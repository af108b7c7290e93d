"""The suite's one shared base, imported by the tests of every feature folder:

    personas      the cast (people, organizations, sites, stations, cards) and builders of more
    billing_cast  billing's additions to the cast: an issuer, tariffs, priced sessions
    chargers      chargers speaking raw OCPP-J frames: in-process over the consumer, or over a
                  real TCP socket to uvicorn in the test's own loop; and a silent one
    examples      what each block's test module gives the message table's test
    servers       real server processes: daphne, uvicorn as the Procfile runs it, redis, a Celery
                  worker, a TCP proxy; and a bounded wait for what they do
    live          the dashboard's live socket, as a page opens it, in-process
    browser       the dashboard in Debian's chromium (Playwright) against a real daphne
    concurrency   real threads for races

Their fixtures are offered by tests/conftest.py, which applies to every folder below it (the
browser's are defined in browser.py and registered there).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
