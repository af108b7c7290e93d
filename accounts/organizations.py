"""Organizations (tenants) and their sites: created and changed by operator admins, audited.

Who sees a site follows its organization (accounts.access): moving a site to another
organization changes what the members of both see, and their open pages are told so.
"""

from zoneinfo import available_timezones

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction

from accounts import audit, signals
from accounts.models import AuditEntry, Membership, Organization, Site

Action = AuditEntry.Action


class OrganizationError(ValueError):
    """An organization or site that cannot be stored as asked; the message says why."""


def _name(name: str, what: str, limit: int) -> str:
    name = name.strip()
    if not name or len(name) > limit:
        raise OrganizationError(f"{what} is 1 to {limit} characters.")
    return name


def _organization_fields(name: str, kind: str, organization: Organization | None) -> dict:
    name = _name(name, "An organization's name", 200)
    if kind not in Organization.Kind.values:
        raise OrganizationError(f"{kind!r} is not a kind of organization: one of "
                                f"{', '.join(Organization.Kind.values)}.")
    others = Organization.objects.filter(name__iexact=name)
    if organization is not None:
        others = others.exclude(pk=organization.pk)
    if others.exists():
        raise OrganizationError(f"There is an organization named {name} already.")
    return {"name": name, "kind": kind}


def organization_create(actor: AbstractBaseUser, name: str,
                        kind: str = Organization.Kind.PROPERTY) -> Organization:
    with transaction.atomic():
        organization = Organization.objects.create(**_organization_fields(name, kind, None))
        audit.record(actor, Action.ORGANIZATION_CREATED,
                     f"created organization {organization.name} "
                     f"({organization.get_kind_display()})",
                     target=f"organization:{organization.pk}", details={"kind": kind})
    return organization


def organization_change(actor: AbstractBaseUser, organization: Organization, name: str,
                        kind: str) -> Organization:
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=organization.pk)
        fields = _organization_fields(name, kind, organization)
        changed = {field: [getattr(organization, field), value]
                   for field, value in fields.items() if getattr(organization, field) != value}
        if not changed:
            return organization
        Organization.objects.filter(pk=organization.pk).update(**fields)
        organization.refresh_from_db()
        audit.record(actor, Action.ORGANIZATION_CHANGED,
                     f"changed organization {organization.name}: {', '.join(changed)}",
                     target=f"organization:{organization.pk}", details=changed)
    return organization


def _site_fields(organization: Organization, name: str, address: str, time_zone: str) -> dict:
    if time_zone not in available_timezones():
        raise OrganizationError(f"{time_zone!r} is not a time zone (e.g. Europe/Berlin, UTC).")
    address = address.strip()
    if len(address) > 300:
        raise OrganizationError("An address is at most 300 characters.")
    return {"organization": organization, "name": _name(name, "A site's name", 200),
            "address": address, "time_zone": time_zone}


def site_create(actor: AbstractBaseUser, organization: Organization, name: str,
                address: str = "", time_zone: str = "UTC") -> Site:
    with transaction.atomic():
        site = Site.objects.create(**_site_fields(organization, name, address, time_zone))
        audit.record(actor, Action.SITE_CREATED,
                     f"created site {site.name} of {organization.name}",
                     target=f"site:{site.pk}",
                     details={"organization": organization.pk, "time_zone": time_zone})
        _access_changed([organization.pk])
    return site


def site_change(actor: AbstractBaseUser, site: Site, organization: Organization, name: str,
                address: str, time_zone: str) -> Site:
    with transaction.atomic():
        site = Site.objects.select_for_update().get(pk=site.pk)
        fields = _site_fields(organization, name, address, time_zone)
        changed = {field: [getattr(site, field), value] for field, value in fields.items()
                   if getattr(site, field) != value}
        if not changed:
            return site
        moved_from = site.organization_id
        Site.objects.filter(pk=site.pk).update(**fields)
        site.refresh_from_db()
        if "organization" in changed:
            changed["organization"] = [moved_from, organization.pk]
            _access_changed([moved_from, organization.pk])
        audit.record(actor, Action.SITE_CHANGED,
                     f"changed site {site.name} of {organization.name}: {', '.join(changed)}",
                     target=f"site:{site.pk}", details=changed)
    return site


def _access_changed(organization_ids: list[int]) -> None:
    """The members of these organizations see other sites now."""
    for user_id in (Membership.objects.filter(organization__in=organization_ids)
                    .values_list("user_id", flat=True).distinct()):
        signals.access_changed.send(User, user_id=user_id)
