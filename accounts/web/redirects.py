"""Where a form sends a person back to: the page it came from (`next`), if that page is ours."""

from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def redirect_next(request: HttpRequest, default: str, *args: object) -> HttpResponseRedirect:
    """Back to `next` when it is a page of this site, else to `default` (a URL name and its
    arguments): a link crafted elsewhere must not send a signed-in person off-site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(default, *args)
