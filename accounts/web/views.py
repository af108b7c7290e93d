"""Pages for cards, card imports, local lists, the audit log, memberships, organizations and
sites.

Thin: reading goes through accounts.access (another tenant's object is a 404), writing through
accounts.cards, accounts.people, accounts.organizations and stations.services.local_lists, which
audit what they do.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import access, audit, card_use, cards, organizations, people
from accounts.models import AuditEntry, IdToken, Membership, Organization, Site
from accounts.web.forms import (
    AuditFilter,
    CardFilter,
    CardForm,
    ImportForm,
    MemberForm,
    OrganizationForm,
    RoleForm,
    SiteForm,
)
from accounts.web.redirects import redirect_next
from stations.access import may_operate_station, stations_for, transactions_for
from stations.models import LocalListEntry, LocalListState, Station
from stations.services import commands, local_lists
from stations.web import fragments


def _page(request: HttpRequest, template: str, nav: str, context: dict) -> HttpResponse:
    """A full page in the dashboard's frame (its nav and pending count)."""
    return render(request, f"accounts/{template}.html", {
        "nav": nav, "pending_count": fragments.pending_stations(request.user).count(),
        **context})


def _csv(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


# --- cards ---------------------------------------------------------------------------------------

def _filtered_cards(request: HttpRequest) -> tuple[CardFilter, QuerySet[IdToken]]:
    form = CardFilter(request.user, request.GET)
    found = access.id_tokens_for(request.user).select_related("organization")
    if form.is_valid():
        data = form.cleaned_data
        if data["q"]:
            found = found.filter(Q(value__icontains=data["q"]) | Q(holder__icontains=data["q"]))
        if data["status"] == "expired":
            found = found.filter(expires_at__lte=timezone.now())
        elif data["status"]:
            found = found.filter(status=data["status"])
        if data["organization"]:
            found = found.filter(organization=data["organization"])
    return form, found


@require_GET
@login_required
def card_list(request: HttpRequest) -> HttpResponse:
    form, found = _filtered_cards(request)
    page = fragments.page_of(found, request.GET.get("page"))
    query = urlencode({k: v for k, v in request.GET.items() if k != "page" and v})
    return _page(request, "cards", "cards", {
        "cards": page, "filter": form, "query": query,
        "may_manage": access.may_manage_id_tokens(request.user),
        "managed": set(access.id_tokens_managed_by(request.user).filter(
            pk__in=[card.pk for card in page]).values_list("pk", flat=True)),
    })


@require_GET
@login_required
def card_export(request: HttpRequest) -> StreamingHttpResponse:
    _, found = _filtered_cards(request)
    return _csv(cards.export_csv(request.user, found), "cards.csv")


@require_POST
@login_required
def card_bulk(request: HttpRequest) -> HttpResponse:
    """Block, unblock or expire the ticked cards (only those the user manages change)."""
    _require(access.may_manage_id_tokens(request.user))
    ids = [int(pk) for pk in request.POST.getlist("card") if pk.isdigit()]
    chosen = access.id_tokens_managed_by(request.user).filter(pk__in=ids)
    verb = request.POST.get("action", "")
    if verb == "expire":
        changed = cards.expire(request.user, chosen)
    elif verb in ("block", "unblock"):
        status = IdToken.Status.BLOCKED if verb == "block" else IdToken.Status.ACCEPTED
        changed = cards.set_status(request.user, chosen, status)
    else:
        messages.error(request, "Choose what to do with the ticked cards.")
        return redirect("cards")
    done = {"block": "blocked", "unblock": "unblocked", "expire": "expired"}[verb]
    messages.info(request, f"{changed} card{'s' if changed != 1 else ''} {done}."
                  if ids else "Tick the cards first.")
    return redirect_next(request, "cards")


@require_http_methods(["GET", "POST"])
@login_required
def card_new(request: HttpRequest) -> HttpResponse:
    _require(access.may_manage_id_tokens(request.user))
    form = CardForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            card = cards.issue(request.user, form.card(), form.cleaned_data["organization"])
        except cards.CardError as error:
            form.add_error("value", str(error))
        else:
            messages.info(request, f"Card {card.value} issued.")
            return redirect("card", card.pk)
    return _page(request, "card_form", "cards", {"form": form, "card": None})


@require_http_methods(["GET", "POST"])
@login_required
def card_detail(request: HttpRequest, pk: int) -> HttpResponse:
    card = get_object_or_404(access.id_tokens_for(request.user), pk=pk)
    may_change = access.may_manage_id_tokens_of(request.user, card.organization_id)
    if request.method == "POST":
        _require(may_change)
    form = CardForm(request.user, request.POST or None, initial=CardForm.initial_of(card))
    if request.method == "POST" and form.is_valid():
        try:
            cards.change(request.user, card, form.card(), form.cleaned_data["organization"])
        except cards.CardError as error:
            form.add_error("value", str(error))
        else:
            messages.info(request, f"Card {form.cleaned_data['value']} saved.")
            return redirect("card", card.pk)
    sessions = card.transactions.filter(
        pk__in=transactions_for(request.user)).select_related("station")[:10]
    return _page(request, "card_form", "cards", {
        "form": form, "card": card, "may_change": may_change, "sessions": sessions})


@require_POST
@login_required
def card_delete(request: HttpRequest, pk: int) -> HttpResponse:
    card = get_object_or_404(access.id_tokens_for(request.user), pk=pk)
    _require(access.may_manage_id_tokens_of(request.user, card.organization_id))
    try:
        cards.delete(request.user, card)
    except cards.CardError as error:
        messages.error(request, str(error))
        return redirect("card", card.pk)
    messages.info(request, f"Card {card.value} deleted.")
    return redirect("cards")


# --- imports -------------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@login_required
def card_import(request: HttpRequest) -> HttpResponse:
    _require(access.may_manage_id_tokens(request.user))
    form = ImportForm(request.user, request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = cards.import_start(request.user, form.cleaned_data["organization"],
                                     upload.name, upload.read())
        except cards.CardError as error:
            form.add_error("file", str(error))
        else:
            return redirect("card-import", job.pk)
    recent = access.card_imports_for(request.user).defer("content", "rejections")[:10]
    return _page(request, "import", "cards", {"form": form, "recent": recent,
                                              "columns": cards.COLUMNS})


@require_GET
@login_required
def card_import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(access.card_imports_for(request.user).defer("content"), pk=pk)
    context = {"job": job, "rejections": job.rejections[:100], "changes": job.changes[:200],
               "may_decide": access.may_manage_id_tokens_of(request.user, job.organization_id)}
    if request.htmx and request.htmx.target == "import-progress":
        return render(request, "accounts/fragments/import_progress.html", context)
    return _page(request, "import_detail", "cards", context)


@require_POST
@login_required
def card_import_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Apply the changes an import lists for existing cards, or leave the cards as they are."""
    job = get_object_or_404(access.card_imports_for(request.user).defer("content"), pk=pk)
    decide = {"confirm": cards.import_confirm, "discard": cards.import_discard}.get(decision)
    if decide is None:
        raise Http404("No such decision")
    _require(access.may_manage_id_tokens_of(request.user, job.organization_id))
    try:
        decide(request.user, job)
    except cards.CardError as error:
        messages.error(request, str(error))
    return redirect("card-import", job.pk)


@require_GET
@login_required
def card_import_rejections(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(access.card_imports_for(request.user).defer("content"), pk=pk)
    response = HttpResponse(cards.rejections_csv(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rejections-{job.pk}.csv"'
    return response


# --- where cards charge --------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@login_required
def card_access(request: HttpRequest) -> HttpResponse:
    """Agreements letting organizations' cards charge at sites, and each organization's card
    policy (roaming, one session per card): seen by those they concern, changed by those
    accounts.access says may."""
    if request.method == "POST":
        try:
            note = _card_access_change(request)
        except card_use.AccessError as error:
            messages.error(request, str(error))
        else:
            messages.info(request, note)
        return redirect("card-access")
    user = request.user
    policies = [(organization, {name: access.may_set_card_policy(user, organization, name)
                                for name in card_use.POLICY_WORDS})
                for organization in access.card_policy_organizations_for(user).order_by("name")]
    operated = access.sites_operated_by(user).order_by("name")
    return _page(request, "card_access", "cards", {
        "agreements": access.site_accesses_for(user).select_related("organization", "site"),
        "operated": set(operated.values_list("pk", flat=True)), "sites": operated,
        "policies": policies,
        # Organization names are offered only to those who see every organization.
        "organizations": (Organization.objects.order_by("name") if access.sees_everything(user)
                          else Organization.objects.none()),
    })


def _card_access_change(request: HttpRequest) -> str:
    user, form = request.user, request.POST
    if form.get("grant"):
        site = get_object_or_404(access.sites_operated_by(user), pk=form.get("site") or 0)
        organization = Organization.objects.filter(name=form.get("organization", "").strip())
        if not organization.exists():
            raise card_use.AccessError("No organization of that name.")
        card_use.access_grant(user, organization.get(), site)
        return f"The cards of {organization.get()} charge at {site} now."
    if form.get("revoke"):
        agreement = get_object_or_404(access.site_accesses_for(user), pk=form["revoke"])
        _require(access.sites_operated_by(user).filter(pk=agreement.site_id).exists())
        card_use.access_revoke(user, agreement)
        return f"The cards of {agreement.organization} no longer charge at {agreement.site}."
    organization = get_object_or_404(access.card_policy_organizations_for(user),
                                     pk=form.get("organization") or 0)
    name = form.get("field", "")
    _require(access.may_set_card_policy(user, organization, name))
    card_use.policy_set(user, organization, **{name: form.get("value") == "on"})
    return f"Saved for {organization}."


# --- local lists ---------------------------------------------------------------------------------

@require_GET
@login_required
def local_list_overview(request: HttpRequest) -> HttpResponse:
    stations = stations_for(request.user).select_related("site", "local_list").annotate(
        entry_count=Count("local_list_entries")).order_by("pk")
    page = fragments.page_of(stations, request.GET.get("page"))
    return _page(request, "local_lists", "local-lists", {"stations": page})


def _station(request: HttpRequest, station_id: str) -> Station:
    return get_object_or_404(stations_for(request.user).select_related("site"),
                             pk=station_id)


@require_GET
@login_required
def local_list_detail(request: HttpRequest, station_id: str) -> HttpResponse:
    station = _station(request, station_id)
    state = LocalListState.objects.filter(station=station).first()
    context = {"station": station, "state": state,
               "may_operate": may_operate_station(request.user, station)}
    if request.htmx and request.htmx.target == "list-state":
        return render(request, "accounts/fragments/list_state.html", context)
    entries = fragments.page_of(LocalListEntry.objects.filter(station=station),
                                request.GET.get("page"))
    hidden = card_use.hidden_values(request.user, {entry.value for entry in entries})
    for entry in entries:
        entry.value_shown = card_use.masked(entry.value) if entry.value in hidden else entry.value
    return _page(request, "local_list", "local-lists", {**context, "entries": entries})


@require_POST
@login_required
def local_list_action(request: HttpRequest, station_id: str, action: str) -> HttpResponse:
    station = _station(request, station_id)
    _require(may_operate_station(request.user, station))
    try:
        if action in ("enable", "disable"):
            local_lists.set_enabled(request.user, station, action == "enable")
            note = f"Local list {'on' if action == 'enable' else 'off'}."
        elif action in ("push", "push-full"):
            with transaction.atomic():
                note = local_lists.sync(station, full=action == "push-full", user=request.user)
            note = note[:1].upper() + note[1:] + "."
        elif action == "version":
            call = local_lists.get_version(station, request.user)
            note = f"Asked for the list version: {call.get_status_display()}."
        elif action == "clear-cache":
            call = local_lists.clear_cache(station, request.user)
            note = f"Cache clear asked: {call.get_status_display()}."
        else:
            return HttpResponse("No such action", status=404)
    except commands.CommandError as error:
        messages.error(request, str(error))
    else:
        messages.info(request, note)
    return redirect("local-list", station.pk)


# --- audit ---------------------------------------------------------------------------------------

@require_GET
@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    _require(access.may_administer(request.user))
    form = AuditFilter(request.GET)
    found = form.entries() if form.is_valid() else AuditEntry.objects.none()
    page = fragments.page_of(found, request.GET.get("page"))
    query = urlencode({k: v for k, v in request.GET.items() if k != "page" and v})
    return _page(request, "audit", "audit", {"entries": page, "filter": form, "query": query})


@require_GET
@login_required
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    _require(access.may_administer(request.user))
    form = AuditFilter(request.GET)
    if not form.is_valid():
        return HttpResponse("Check the filters: " + form.errors.as_text(), status=400)
    return _csv(audit.export_csv(request.user, form.entries()), "audit.csv")


# --- memberships ---------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@login_required
def members(request: HttpRequest) -> HttpResponse:
    _require(access.may_administer(request.user))
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = data["user"] or people.user_create(request.user, data["username"],
                                                      data["password"])
            people.member_add(request.user, user, data["organization"], data["role"])
        except people.MembershipError as error:
            form.add_error(None, str(error))
        else:
            messages.info(request, f"{user} is now {Membership.Role(data['role']).label} of "
                          f"{data['organization']}.")
            return redirect("members")
    memberships = Membership.objects.select_related("user", "organization").order_by(
        "organization__name", "user__username")
    page = fragments.page_of(memberships, request.GET.get("page"))
    return _page(request, "members", "members", {"memberships": page, "form": form,
                                                 "roles": Membership.Role.choices})


@require_POST
@login_required
def member_change(request: HttpRequest, pk: int) -> HttpResponse:
    _require(access.may_administer(request.user))
    membership = get_object_or_404(Membership.objects.select_related("user", "organization"),
                                   pk=pk)
    try:
        if request.POST.get("remove"):
            people.member_remove(request.user, membership)
            messages.info(request, f"{membership.user} removed from {membership.organization}.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                return HttpResponse("Choose a role.", status=400)
            people.role_change(request.user, membership, form.cleaned_data["role"])
            messages.info(request, f"{membership.user}'s role saved.")
    except people.MembershipError as error:
        messages.error(request, str(error))
    return redirect("members")


# --- organizations and sites ---------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@login_required
def organization_list(request: HttpRequest) -> HttpResponse:
    _require(access.may_administer(request.user))
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = organizations.organization_create(
                request.user, form.cleaned_data["name"], form.cleaned_data["kind"])
        except organizations.OrganizationError as error:
            form.add_error(None, str(error))
        else:
            messages.info(request, f"{organization} created: now add its sites.")
            return redirect("organization", organization.pk)
    found = Organization.objects.annotate(
        site_count=Count("sites", distinct=True),
        member_count=Count("memberships", distinct=True)).order_by("name")
    return _page(request, "organizations", "organizations", {
        "organizations": fragments.page_of(found, request.GET.get("page")), "form": form})


@require_http_methods(["GET", "POST"])
@login_required
def organization_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require(access.may_administer(request.user))
    organization = get_object_or_404(Organization, pk=pk)
    form = OrganizationForm(request.POST or None, initial={"name": organization.name,
                                                           "kind": organization.kind})
    if request.method == "POST" and form.is_valid():
        try:
            organizations.organization_change(request.user, organization,
                                              form.cleaned_data["name"], form.cleaned_data["kind"])
        except organizations.OrganizationError as error:
            form.add_error(None, str(error))
        else:
            messages.info(request, "Organization saved.")
            return redirect("organization", organization.pk)
    return _page(request, "organization", "organizations", {
        "organization": organization, "form": form,
        "sites": organization.sites.annotate(station_count=Count("stations")),
        "memberships": organization.memberships.select_related("user").order_by(
            "user__username"),
        "site_form": SiteForm(initial={"organization": organization}),
    })


@require_http_methods(["GET", "POST"])
@login_required
def site_new(request: HttpRequest) -> HttpResponse:
    _require(access.may_administer(request.user))
    form = SiteForm(request.POST or None, initial={"organization": request.GET.get("organization")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            site = organizations.site_create(request.user, data["organization"], data["name"],
                                             data["address"], data["time_zone"])
        except organizations.OrganizationError as error:
            form.add_error(None, str(error))
        else:
            messages.info(request, f"Site {site} created: its stations can now be added.")
            return redirect("organization", site.organization_id)
    return _page(request, "site_form", "organizations", {"form": form, "site": None})


@require_http_methods(["GET", "POST"])
@login_required
def site_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require(access.may_administer(request.user))
    site = get_object_or_404(Site, pk=pk)
    form = SiteForm(request.POST or None, initial={
        "name": site.name, "organization": site.organization, "address": site.address,
        "time_zone": site.time_zone})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            organizations.site_change(request.user, site, data["organization"], data["name"],
                                      data["address"], data["time_zone"])
        except organizations.OrganizationError as error:
            form.add_error(None, str(error))
        else:
            messages.info(request, "Site saved.")
            return redirect("organization", data["organization"].pk)
    return _page(request, "site_form", "organizations", {"form": form, "site": site})
