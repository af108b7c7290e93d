"""Users, their memberships and roles.

Roles are data: a Membership row says who has which role where, and accounts.access turns it
into what they see. Changing one is an audited action like any other.
"""

import hashlib

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser, User
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest

from accounts import audit, signals
from accounts.models import AuditEntry, Membership, Organization
from csms.proxies import client_address

Action = AuditEntry.Action


class MembershipError(ValueError):
    """A membership change that cannot be made as asked; the message says why."""


def user_create(actor: AbstractBaseUser, username: str, password: str, email: str = "") -> User:
    username = username.strip()
    if not username or len(username) > 150:
        raise MembershipError("A user name is 1 to 150 characters.")
    if User.objects.filter(username__iexact=username).exists():
        raise MembershipError(f"The user name {username} is taken.")
    candidate = User(username=username, email=email)
    try:
        validate_password(password, candidate)
    except ValidationError as error:
        raise MembershipError(" ".join(error.messages)) from None
    with transaction.atomic():
        candidate.set_password(password)
        candidate.save()
        audit.record(actor, Action.USER_CREATED, f"created user {username}",
                     target=f"user:{candidate.pk}", details={"email": email})
    return candidate


def member_add(actor: AbstractBaseUser, user: User, organization: Organization,
               role: str) -> Membership:
    if role not in Membership.Role.values:
        raise MembershipError(f"{role!r} is not a role.")
    with transaction.atomic():
        if Membership.objects.filter(user=user, organization=organization).exists():
            raise MembershipError(f"{user} is a member of {organization} already: change the "
                                  "role instead.")
        membership = Membership.objects.create(user=user, organization=organization, role=role)
        audit.record(actor, Action.MEMBER_ADDED,
                     f"made {user} {membership.get_role_display()} of {organization}",
                     target=f"user:{user.pk}",
                     details={"organization": organization.pk, "role": role})
        signals.access_changed.send(User, user_id=user.pk)
    return membership


def role_change(actor: AbstractBaseUser, membership: Membership, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise MembershipError(f"{role!r} is not a role.")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        before = membership.role
        if before == role:
            return membership
        _keep_an_admin(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(actor, Action.MEMBER_ROLE_CHANGED,
                     f"changed {membership.user}'s role in {membership.organization} from "
                     f"{Membership.Role(before).label} to {membership.get_role_display()}",
                     target=f"user:{membership.user_id}",
                     details={"organization": membership.organization_id,
                              "role": [before, role]})
        signals.access_changed.send(User, user_id=membership.user_id)
    return membership


def member_remove(actor: AbstractBaseUser, membership: Membership) -> None:
    with transaction.atomic():
        _keep_an_admin(membership)
        membership.delete()
        audit.record(actor, Action.MEMBER_REMOVED,
                     f"removed {membership.user} ({membership.get_role_display()}) from "
                     f"{membership.organization}",
                     target=f"user:{membership.user_id}",
                     details={"organization": membership.organization_id,
                              "role": membership.role})
        signals.access_changed.send(User, user_id=membership.user_id)


def logged_out(sender: type, request: object, user: User | None, **kwargs: object) -> None:
    """A person who logs out sees nothing any more, in any page still open."""
    if user is not None:
        signals.access_changed.send(User, user_id=user.pk)


def _keep_an_admin(membership: Membership) -> None:
    """Nobody locks the operator out: the last operator admin (without a superuser) stays."""
    if membership.role != Membership.Role.OPERATOR_ADMIN:
        return
    others = Membership.objects.filter(role=Membership.Role.OPERATOR_ADMIN).exclude(
        pk=membership.pk)
    if not others.exists() and not User.objects.filter(is_superuser=True,
                                                       is_active=True).exists():
        raise MembershipError("This is the last operator admin: make someone else operator "
                              "admin first.")


# --- signing in -----------------------------------------------------------------------------

def request_address(request: HttpRequest) -> str:
    """Who asks, as the gateway and /metrics see it: a configured proxy's X-Forwarded-For is
    believed, no one else's."""
    return client_address(getattr(request, "scope", None)
                          or {"client": (request.META.get("REMOTE_ADDR", ""), 0)})


def _login_failures_key(username: str, address: str) -> str:
    named = hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()
    return f"login-failures:{named}"


def login_blocked(username: str, address: str) -> bool:
    failures = cache.get(_login_failures_key(username, address)) or 0
    return failures >= settings.LOGIN_FAILURE_LIMIT


def login_failed(username: str, address: str) -> None:
    """Count a failed login of an account from an address; reaching the limit is audited."""
    key, window = _login_failures_key(username, address), settings.LOGIN_FAILURE_WINDOW
    if cache.add(key, 1, timeout=window):
        failures = 1
    else:
        try:
            failures = cache.incr(key)
        except ValueError:  # expired between add and incr
            failures = 1
            cache.add(key, 1, timeout=window)
    if failures == settings.LOGIN_FAILURE_LIMIT:
        account = User.objects.filter(username__iexact=username).first()
        audit.record(None, Action.LOGIN_BLOCKED,
                     f"logins of {username[:60]} from {address} blocked for "
                     f"{window // 60} min after {failures} failures",
                     target=f"user:{account.pk}" if account else f"login:{username[:60]}",
                     details={"username": username[:150], "address": address,
                              "failures": failures, "seconds": window})


def login_succeeded(username: str, address: str) -> None:
    cache.delete(_login_failures_key(username, address))


class ThrottledModelBackend(ModelBackend):
    """Django's password check, throttled per account and address: after LOGIN_FAILURE_LIMIT
    failures within LOGIN_FAILURE_WINDOW seconds, that account is refused from that address
    (even with the right password) until the window passes. Other addresses, and the account's
    owner elsewhere, are not locked out. Without a request (a shell, a management command)
    there is no address and no throttle."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: object) -> User | None:
        if request is None or not username:
            return super().authenticate(request, username, password, **kwargs)
        address = request_address(request)
        if login_blocked(username, address):
            request.login_throttled = True  # for the login page's message
            raise PermissionDenied("too many failed logins")  # no other backend is asked
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            login_failed(username, address)
        else:
            login_succeeded(username, address)
        return user
