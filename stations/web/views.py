"""The operator dashboard: server-rendered pages, htmx for the pieces, the socket for live data.

Reading is in stations/web/fragments.py (shared with the live socket); remote actions come from
the registry in stations/web/actions.py, which the API's command endpoints come from too, and
send stations/services/commands.py's version-neutral commands. Who sees what is decided by
accounts.access and stations.access: a station another tenant owns is a 404, an action without
the right is 403.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails
from rest_framework import serializers

from accounts import access
from accounts.web.redirects import redirect_next
from stations.access import may_operate_station, stations_for
from stations.models import Station, Transaction
from stations.services import commands
from stations.services.registration import station_registration_decide
from stations.web import actions, fragments
from stations.web.consumers import live_url


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_fragment(request: HtmxHttpRequest, target: str) -> bool:
    """An htmx request for one piece of the page (a boosted navigation wants the whole page)."""
    return bool(request.htmx) and not request.htmx.boosted and request.htmx.target == target


# The nav entry each page belongs to.
NAV = {"overview": "overview", "sites": "sites", "site": "sites", "station": "sites",
       "sessions": "sessions", "session": "sessions", "pending": "pending"}


def _page(request: HtmxHttpRequest, template: str, context: dict,
          live: dict[str, str] | None = None) -> HttpResponse:
    """A full page: the nav's pending count, the user's rights and the page's live socket."""
    user = request.user
    context = {
        "nav": NAV.get(template, ""),
        "may_operate": access.may_operate(user),
        **context,
        "pending_count": fragments.pending_stations(user).count(),
        "live_url": live_url(live) if live is not None else "",
    }
    return render(request, f"dashboard/{template}.html", context)


@require_GET
@login_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    counts = fragments.overview_counts(request.user)
    return _page(request, "overview",
                 {"counts": counts, "alerts": fragments.alerts(request.user),
                  "first_run": fragments.first_run(request.user)},
                 live={"page": "overview"})


@require_GET
@login_required
def sites(request: HtmxHttpRequest) -> HttpResponse:
    page = fragments.page_of(fragments.sites(request.user), request.GET.get("page"))
    return _page(request, "sites", {"sites": page},
                 live={"page": "sites", "p": str(page.number)})


@require_GET
@login_required
def site_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    site = get_object_or_404(access.sites_for(request.user), pk=pk)
    rows = fragments.station_rows(site.stations.all(), request.GET.get("page"))
    return _page(request, "site", {"site": site, "rows": rows,
                                   "counts": fragments.site_counts(site)},
                 live={"page": "site", "site": str(site.pk), "p": str(rows.number)})


@require_GET
@login_required
def station_detail(request: HtmxHttpRequest, station_id: str) -> HttpResponse:
    station = fragments.station_row(request.user, station_id)
    if station is None:
        raise Http404("No such station")
    if wants_fragment(request, "station-local-list"):
        return render(request, "dashboard/fragments/station_local_list.html",
                      {"station": station})
    log_filter = fragments.LogFilter.from_params(request.GET)
    log = fragments.message_log(station, log_filter, request.GET.get("page"), request.user)
    context = {
        "station": station,
        "may_operate": may_operate_station(request.user, station),
        "action_forms": actions.forms_for(request.user, station),
        "sessions": fragments.current_sessions(station),
        "recent": fragments.recent_sessions(station),
        "calls": fragments.recent_calls(station),
        **log,
    }
    # The socket shows the log as this page does: its filter and its page of it.
    return _page(request, "station", context,
                 live={"page": "station", "station": station.pk, "p": str(log["log"].number),
                       **log_filter.params()})


@require_GET
@login_required
def sessions(request: HtmxHttpRequest) -> HttpResponse:
    session_filter = fragments.SessionFilter.from_params(request.GET)
    page = fragments.page_of(fragments.sessions(request.user, session_filter),
                             request.GET.get("page"))
    return _page(request, "sessions", {
        "sessions": page, "filter": session_filter,
        "filter_query": urlencode(session_filter.params()),
        "site_choices": access.sites_for(request.user).only("pk", "name"),
    }, live={"page": "sessions", "p": str(page.number), **session_filter.params()})


@require_GET
@login_required
def session_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    tx = fragments.session(request.user, pk)
    if tx is None:
        raise Http404("No such session")
    context = fragments.session_detail(tx)
    context["may_operate"] = may_operate_station(request.user, tx.station)
    return _page(request, "session", context,
                 live={"page": "session", "tx": str(tx.pk)})


@require_GET
@login_required
def pending(request: HtmxHttpRequest) -> HttpResponse:
    return _pending_page(request)


def _pending_page(request: HtmxHttpRequest, **context: object) -> HttpResponse:
    page = fragments.page_of(fragments.pending_stations(request.user), request.GET.get("page"))
    return _page(request, "pending", {
        "stations": page, "site_choices": access.sites_for(request.user).only("pk", "name"),
        **context,
    }, live={"page": "pending"})


# --- actions ---------------------------------------------------------------------------------

def _running_session(request: HttpRequest, station: Station) -> Transaction:
    """The session an action on a session is taken on: its form names it (`transaction`)."""
    number = request.POST.get("transaction", "")
    if not number.isdigit():
        raise serializers.ValidationError({"transaction": ["A session is named by its number."]})
    session = station.transactions.filter(pk=number, state=Transaction.State.ACTIVE).first()
    if session is None:  # a page older than the session's end
        raise commands.CommandError("That session has ended already.")
    return session


@require_POST
@login_required
def station_action(request: HtmxHttpRequest, station_id: str, action: str) -> HttpResponse:
    """Take one of the registry's actions (stations/web/actions.py) and answer with its outcome.

    The command blocks until the charger answers or the call times out; htmx shows "waiting for
    the charger" meanwhile, and the call.outcome event updates every other open page. Fields no
    form of ours sends (a tampered or stale page) are a 400 that says what is wrong.
    """
    station = get_object_or_404(stations_for(request.user), pk=station_id)
    entry = actions.BY_NAME.get(action)
    if entry is None:
        raise Http404("No such action")
    if not entry.allowed(request.user, station):
        raise PermissionDenied
    try:
        subject = _running_session(request, station) if entry.on_session else station
        call, problem = entry.send(subject, entry.check(request.POST), request.user), ""
    except serializers.ValidationError as error:
        return _refused(request, station, entry.readable(error))
    except commands.CommandError as error:
        call, problem = None, str(error)
    if request.htmx:
        return render(request, "dashboard/fragments/call_outcome.html",
                      {"call": call, "problem": problem, "station": station})
    if call is not None:
        messages.info(request, f"{call.action}: {capfirst(call.get_status_display())}")
    else:
        messages.error(request, problem)
    return redirect_next(request, "station", station.pk)


def _refused(request: HtmxHttpRequest, station: Station, problem: str) -> HttpResponse:
    if request.htmx:  # shown where outcomes are (static/js/dashboard.js swaps it in)
        return render(request, "dashboard/fragments/call_outcome.html",
                      {"call": None, "problem": problem, "station": station}, status=400)
    return HttpResponseBadRequest(problem)


@require_POST
@login_required
def pending_decide(request: HtmxHttpRequest, station_id: str, decision: str) -> HttpResponse:
    """Accept a station that connected unknown (it is told at its next boot), or reject it.
    Of two people deciding at once the first decision stands, and the second is told so."""
    # Any station the user sees: one decided meanwhile (a double click, a colleague) is answered
    # with what holds now rather than a 404.
    station = get_object_or_404(stations_for(request.user), pk=station_id)
    registration = {"approve": Station.Registration.ACCEPTED,
                    "reject": Station.Registration.REJECTED}.get(decision)
    if registration is None:
        raise Http404("No such decision")
    if not may_operate_station(request.user, station):
        raise PermissionDenied
    site = None
    if request.POST.get("site"):
        site = get_object_or_404(access.sites_for(request.user), pk=request.POST["site"])
    decision = station_registration_decide(
        station, registration, user=request.user, site=site, was=Station.Registration.PENDING,
        unauthenticated=request.POST.get("unauthenticated") == "on")
    station.refresh_from_db()
    if request.htmx:
        return render(request, "dashboard/fragments/pending_decided.html", {
            "station": station, "decided": decision.decided, "password": decision.password,
            "pending_count": fragments.pending_stations(request.user).count(),
        })
    if decision.password:  # shown on this answer only: a message would keep it in the session
        return _pending_page(request, issued=station, password=decision.password)
    outcome = station.get_registration_display()
    messages.info(request, f"{station.pk}: {outcome}" if decision.decided
                  else f"{station.pk} was already decided: {outcome}")
    return redirect("pending")

