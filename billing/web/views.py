"""Billing pages under /billing/: tariffs, session costs, invoices, revenue and exports.

Thin: reading is scoped by accounts.access (another tenant's object is a 404), writing goes
through billing's services and only for finance and operator admins (others get 403).
"""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction as db
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import access
from accounts.models import Organization
from billing import einvoice, exports, invoices, services, tariffs, tasks
from billing.access import invoices_for, revenue_sites_for, session_costs_for, tariffs_for
from billing.models import CustomerAccount, ExportJob, Invoice, Issuer, SessionCost
from billing.web import forms
from csms import csvfiles
from stations.access import transactions_for
from stations.web import fragments


def _page(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    context = {"nav": "billing", "may_edit": access.may_edit_billing(request.user),
               "pending_count": fragments.pending_stations(request.user).count(), **context}
    return render(request, f"billing/{template}.html", context)


def editors_only(view: Callable) -> Callable:
    """Finance and operator admins only; everyone else is told no (403)."""

    @wraps(view)
    def check(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not access.may_edit_billing(request.user):
            raise PermissionDenied("Only finance and operator admins change billing.")
        return view(request, *args, **kwargs)

    return login_required(check)


def _refused(request: HttpRequest, error: Exception) -> None:
    text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
    messages.error(request, text)


# --- overview ---------------------------------------------------------------------------------

@require_GET
@login_required
def index(request: HttpRequest) -> HttpResponse:
    user = request.user
    costs = session_costs_for(user)
    counts = costs.aggregate(
        review=Count("pk", filter=Q(state=SessionCost.State.REVIEW)),
        unbilled=Count("pk", filter=Q(state=SessionCost.State.FINAL, invoice__isnull=True,
                                      customer__isnull=False)),
        no_tariff=Count("pk", filter=Q(state=SessionCost.State.NO_TARIFF)),
    )
    visible = invoices_for(user)
    return _page(request, "index", {
        "counts": counts,
        "drafts": visible.filter(status=Invoice.Status.DRAFT).count(),
        "open_invoices": visible.filter(status=Invoice.Status.ISSUED).count(),
        "sees_revenue": revenue_sites_for(user).exists(),
        "sees_invoices": visible.exists() or access.may_edit_billing(user),
    })


# --- tariffs ----------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@login_required
def tariff_list(request: HttpRequest) -> HttpResponse:
    tariff_form = forms.TariffForm(request.POST or None, prefix="tariff")
    version_form = forms.VersionForm(request.POST or None, prefix="version")
    windows = forms.WindowFormSet(request.POST or None, prefix="window")
    if request.method == "POST":
        if not access.may_edit_billing(request.user):
            raise PermissionDenied
        if tariff_form.is_valid() and version_form.is_valid() and windows.is_valid():
            try:
                tariff = tariffs.create_tariff(
                    **tariff_form.cleaned_data, windows=forms.window_specs(windows),
                    user=request.user, **version_form.cleaned_data)
            except ValidationError as error:
                _refused(request, error)
            else:
                messages.info(request, f"Tariff {tariff} created; assign it to a site or "
                                       "station below.")
                return redirect("billing:tariff", tariff.pk)
    listed = (tariffs_for(request.user).select_related("issuer")
              .annotate(version_count=Count("versions", distinct=True),
                        places=Count("assignments", distinct=True)))
    return _page(request, "tariffs", {"tariffs": listed, "tariff_form": tariff_form,
                                      "version_form": version_form, "windows": windows,
                                      "issuers": Issuer.objects.exists()})


@require_http_methods(["GET", "POST"])
@login_required
def tariff_detail(request: HttpRequest, pk: int) -> HttpResponse:
    tariff = get_object_or_404(tariffs_for(request.user).select_related("issuer"), pk=pk)
    versions = tariff.versions.prefetch_related("windows").order_by("-valid_from")
    latest = versions.first()
    initial = {name: getattr(latest, name) for name in forms.PRICE_FIELDS} if latest else {}
    version_form = forms.VersionForm(request.POST or None, initial=initial, prefix="version")
    windows = forms.WindowFormSet(request.POST or None, prefix="window", initial=[
        {"label": w.label, "weekdays": list(w.weekdays), "start": w.start, "end": w.end,
         "price_kwh": w.price_kwh, "price_minute": w.price_minute}
        for w in (latest.windows.all() if latest else [])])
    if request.method == "POST":
        if not access.may_edit_billing(request.user):
            raise PermissionDenied
        if version_form.is_valid() and windows.is_valid():
            try:
                version = tariffs.add_version(tariff, windows=forms.window_specs(windows),
                                              user=request.user, **version_form.cleaned_data)
            except ValidationError as error:
                _refused(request, error)
            else:
                messages.info(request, f"Version {version.number} valid from "
                                       f"{version.valid_from:%Y-%m-%d %H:%M} UTC.")
                return redirect("billing:tariff", tariff.pk)
    return _page(request, "tariff", {
        "tariff": tariff, "versions": versions, "version_form": version_form,
        "windows": windows, "assignment_form": forms.AssignmentForm(),
        "assignments": tariff.assignments.select_related("site", "station", "customer"),
    })


@require_POST
@editors_only
def tariff_assign(request: HttpRequest, pk: int) -> HttpResponse:
    tariff = get_object_or_404(tariffs_for(request.user), pk=pk)
    form = forms.AssignmentForm(request.POST)
    if form.is_valid():
        try:
            assignment = tariffs.assign(tariff, **form.cleaned_data, user=request.user)
            messages.info(request, f"{assignment} applies from now on.")
        except ValidationError as error:
            _refused(request, error)
    else:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    return redirect("billing:tariff", tariff.pk)


@require_POST
@editors_only
def tariff_unassign(request: HttpRequest, pk: int, assignment: int) -> HttpResponse:
    tariff = get_object_or_404(tariffs_for(request.user), pk=pk)
    tariffs.unassign(get_object_or_404(tariff.assignments, pk=assignment), request.user)
    messages.info(request, "Assignment removed; sessions already priced keep their price.")
    return redirect("billing:tariff", tariff.pk)


# --- session costs ----------------------------------------------------------------------------

@require_GET
@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    costs = (session_costs_for(request.user)
             .select_related("transaction__station__site", "customer", "invoice",
                             "tariff_version__tariff")
             .order_by("-transaction__started_at"))
    if state in SessionCost.State.values:
        costs = costs.filter(state=state)
    page = fragments.page_of(costs, request.GET.get("page"))
    return _page(request, "sessions", {"costs": page, "state": state,
                                       "states": SessionCost.State.choices})


@require_http_methods(["GET", "POST"])
@login_required
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """pk is the transaction's (the session page of the dashboard links here)."""
    tx = get_object_or_404(
        transactions_for(request.user).select_related("station__site", "id_token"),
        pk=pk)
    if request.method == "POST":
        if not access.may_edit_billing(request.user):
            raise PermissionDenied
        _session_action(request, tx)
        return redirect("billing:session", tx.pk)
    cost = SessionCost.objects.filter(transaction=tx).select_related(
        "tariff_version__tariff", "invoice", "reviewed_by", "customer").first()
    live = services.live_cost(tx) if tx.state == tx.State.ACTIVE else None
    return _page(request, "session", {"tx": tx, "cost": cost, "live": live,
                                      "exclude_form": forms.ExcludeForm(),
                                      "correct_form": forms.CorrectEnergyForm()})


@require_GET
@login_required
def session_cost_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """The cost card alone: the session page polls it while the session runs."""
    tx = get_object_or_404(transactions_for(request.user), pk=pk)
    return render(request, "billing/fragments/session_cost_card.html", {"tx": tx})


def _session_action(request: HttpRequest, tx) -> None:
    action = request.POST.get("action")
    user = request.user
    try:
        with db.atomic():
            cost = services.price(tx)
            if action == "accept":
                cost = services.accept(cost, user)
                messages.info(request, f"Accepted: {cost.get_state_display()}, {cost.gross} "
                                       f"{cost.currency}.")
            elif action == "correct":
                form = forms.CorrectEnergyForm(request.POST)
                if not form.is_valid():
                    raise ValueError(" ".join(e for errs in form.errors.values() for e in errs))
                cost = services.correct_energy(cost, user, form.energy_wh(),
                                               form.cleaned_data["reason"])
                messages.info(request, f"Priced with the corrected energy: "
                                       f"{cost.get_state_display()}, {cost.gross} "
                                       f"{cost.currency}.")
            elif action == "price":
                messages.info(request, f"Priced again: {cost.get_state_display()}.")
            elif action == "exclude":
                form = forms.ExcludeForm(request.POST)
                form.is_valid()
                services.exclude(cost, user, form.cleaned_data.get("note", ""))
                messages.info(request, "This session will not be billed.")
            else:
                messages.error(request, "Unknown action.")
    except ValueError as error:
        _refused(request, error)


# --- invoices ---------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    form = forms.GenerateForm(request.POST or None)
    if request.method == "POST":
        if not access.may_edit_billing(request.user):
            raise PermissionDenied
        if form.is_valid():
            data = form.cleaned_data
            if data["issue"] and not _confirmed(request):
                rows = invoices.pending(*form.period(), data["customer"])
                if rows:
                    return _confirm(request, "Issue these invoices at once?", rows=rows,
                                    consequence="Each gets its number now; an issued invoice "
                                                "can only be cancelled by a credit note.",
                                    button="Generate and issue", danger=False,
                                    cancel=reverse("billing:invoices"))
            try:
                made = invoices.generate(*form.period(), customer=data["customer"],
                                         issue=data["issue"], user=request.user)
            except (ValueError, ValidationError) as error:
                _refused(request, error)
            else:
                whom = f" to {data['customer']}" if data["customer"] else ""
                messages.info(request, f"{len(made)} invoice(s) generated{whom} for "
                                       f"{data['month']}." if made else
                              f"Nothing to bill{whom}: no priced session is waiting for an "
                              "invoice.")
            return redirect("billing:invoices")
    status = request.GET.get("status", "")
    listed = invoices_for(request.user).select_related("customer", "issuer")
    if status in Invoice.Status.values:
        listed = listed.filter(status=status)
    page = fragments.page_of(listed.annotate(line_count=Count("lines"))
                             .order_by("-created_at", "-id"),
                             request.GET.get("page"))
    return _page(request, "invoices", {"invoices": page, "form": form, "status": status,
                                       "statuses": Invoice.Status.choices,
                                       "period_form": forms.PeriodForm(auto_id="csv_%s")})


def _invoice(request: HttpRequest, pk: int) -> Invoice:
    return get_object_or_404(
        invoices_for(request.user).select_related("issuer", "customer", "corrects"),
        pk=pk)


@require_GET
@login_required
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _invoice(request, pk)
    return _page(request, "invoice", {
        "invoice": invoice, "lines": invoice.lines.all(),
        "vat_groups": invoices.vat_groups(invoice), "credit_form": forms.CreditForm(),
        "credit_notes": invoice.credit_notes.all(),
    })


def _confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirmed") == "yes"


def _confirm(request: HttpRequest, question: str, *, consequence: str, button: str,
             cancel: str, danger: bool = True, facts: tuple = (), rows: list = ()
             ) -> HttpResponse:
    """The page that asks before an action that cannot be taken back: what it applies to, what
    follows, and the same form again with `confirmed=yes` (works without JavaScript)."""
    fields = [(name, value) for name, values in request.POST.lists() if name not in (
        "csrfmiddlewaretoken", "confirmed") for value in values]
    return _page(request, "confirm", {"question": question, "consequence": consequence,
                                      "button": button, "danger": danger, "cancel": cancel,
                                      "facts": facts, "rows": rows, "fields": fields,
                                      "action": request.path})


# Actions that cannot be taken back: what the confirmation says, and its button.
_ASKED = {
    "issue": ("Issue this invoice?", "It gets the next number and can no longer change; only "
              "a credit note cancels it.", "Issue"),
    "discard": ("Discard this draft?", "The draft is deleted; its sessions go on the next "
                "invoice generated.", "Discard draft"),
    "credit": ("Cancel this invoice with a credit note?", "A credit note with the next number "
               "cancels it for good, and the invoice becomes void.", "Issue the credit note"),
}


@require_POST
@editors_only
def invoice_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    invoice = _invoice(request, pk)
    user = request.user
    if action in _ASKED and not _confirmed(request):
        question, consequence, button = _ASKED[action]
        if action == "credit":
            rebill = request.POST.get("rebill") in ("on", "true", "1")
            consequence += (" Its sessions are billed again on the next invoice." if rebill
                            else " Its sessions are never billed.")
        return _confirm(request, question, consequence=consequence, button=button,
                        danger=action != "issue",
                        cancel=reverse("billing:invoice", args=[invoice.pk]), facts=(
                            ("Invoice", str(invoice)), ("Customer", invoice.customer),
                            ("Period", f"{invoice.period_start} to {invoice.period_end}"),
                            ("Sessions", invoice.lines.count()),
                            ("Total", f"{invoice.gross_total:,.2f} {invoice.currency}")))
    try:
        if action == "issue":
            invoice = invoices.issue(invoice, user)
            messages.info(request, f"Issued as {invoice.number}.")
        elif action == "paid":
            invoices.mark_paid(invoice, user=user)
            messages.info(request, f"{invoice.number} marked paid.")
        elif action == "credit":
            form = forms.CreditForm(request.POST)
            form.is_valid()
            note = invoices.credit(invoice, rebill=form.cleaned_data.get("rebill", False),
                                   reason=form.cleaned_data.get("reason", ""), user=user)
            messages.info(request, f"Credit note {note.number} issued; {invoice.number} is void.")
            return redirect("billing:invoice", note.pk)
        elif action == "discard":
            invoices.discard(invoice, user)
            messages.info(request, "Draft discarded; its sessions can be billed again.")
            return redirect("billing:invoices")
        else:
            raise Http404("No such action")
    except (invoices.InvoiceError, ValidationError) as error:
        _refused(request, error)
    return redirect("billing:invoice", invoice.pk)


@require_GET
@login_required
def invoice_file(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    invoice = _invoice(request, pk)
    if kind not in exports.INVOICE_FORMATS:
        raise Http404("No such file")
    try:
        return exports.invoice_download(
            request.user, invoice, kind,
            csvfiles.layout_named(request.GET.get("separator"))).response()
    except einvoice.EInvoiceError as error:
        messages.error(request, str(error))
        return redirect("billing:invoice", invoice.pk)


@require_GET
@login_required
def invoices_csv(request: HttpRequest) -> HttpResponse:
    """Every document the user sees that was issued in the chosen month, as one CSV."""
    form = forms.PeriodForm(request.GET)
    if not form.is_valid():
        messages.error(request, "Choose a month.")
        return redirect("billing:invoices")
    return exports.invoices_download(
        request.user, invoices_for(request.user), *form.period(),
        csvfiles.layout_named(request.GET.get("separator"))).response()


# --- revenue ----------------------------------------------------------------------------------

@require_GET
@login_required
def revenue(request: HttpRequest) -> HttpResponse:
    sites = revenue_sites_for(request.user)
    form = forms.PeriodForm(request.GET or None)
    today = timezone.now().date()
    start, end = form.period() if form.is_valid() else invoices.month(today.year, today.month)
    rows = exports.revenue(sites, start, end)
    if request.GET.get("format") == "csv":
        return exports.revenue_download(
            request.user, rows, start, end,
            csvfiles.layout_named(request.GET.get("separator"))).response()
    return _page(request, "revenue", {"rows": rows, "form": form, "start": start, "end": end,
                                      "month": f"{start:%Y-%m}",
                                      "totals": exports.revenue_totals(rows)})


# --- billing details --------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@editors_only
def details(request: HttpRequest) -> HttpResponse:
    """Issuers (who invoices) and customers' billing details."""
    issuer = Issuer.objects.filter(pk=request.GET.get("issuer") or 0).first()
    form = forms.IssuerForm(request.POST or None, instance=issuer)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.info(request, f"Billing details of {saved} saved.")
        return redirect("billing:details")
    customers = Organization.objects.select_related("billing_account").order_by("name")
    return _page(request, "details", {"form": form, "issuer": issuer,
                                      "issuers": Issuer.objects.all(), "customers": customers})


@require_http_methods(["GET", "POST"])
@editors_only
def customer_details(request: HttpRequest, pk: int) -> HttpResponse:
    organization = get_object_or_404(Organization, pk=pk)
    account = CustomerAccount.objects.filter(organization=organization).first()
    form = forms.CustomerAccountForm(request.POST or None, instance=account, initial={
        "legal_name": organization.name})
    if request.method == "POST" and form.is_valid():
        account = form.save(commit=False)
        account.organization = organization
        account.save()
        messages.info(request, f"Billing details of {organization} saved; invoices issued from "
                               "now on carry them.")
        return redirect("billing:details")
    return _page(request, "customer", {"form": form, "organization": organization})


# --- bulk exports -----------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@editors_only
def export_list(request: HttpRequest) -> HttpResponse:
    form = forms.PeriodForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        start, end = form.period()
        job = ExportJob.objects.create(requested_by=request.user, period_start=start,
                                       period_end=end)
        db.on_commit(lambda: tasks.build_export.delay(job.pk))
        messages.info(request, f"Export of {start:%Y-%m} started.")
        return redirect("billing:exports")
    jobs = ExportJob.objects.all()[:20]
    return _page(request, "exports", {"form": form, "jobs": jobs})


@require_GET
@editors_only
def export_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The job's row, polled by the page while the job runs."""
    job = get_object_or_404(ExportJob, pk=pk)
    return render(request, "billing/fragments/export_row.html", {"job": job})


@require_GET
@editors_only
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ExportJob, pk=pk, status=ExportJob.Status.DONE)
    if not job.file:
        raise Http404("The export has no file")
    return exports.export_download(request.user, job)
