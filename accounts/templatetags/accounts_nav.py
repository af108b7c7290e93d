"""What the navigation offers a user: asked of accounts.access, like everything else."""

from django import template
from django.contrib.auth.models import AbstractBaseUser

from accounts import access

register = template.Library()


@register.simple_tag
def account_rights(user: AbstractBaseUser) -> dict[str, bool]:
    return {
        "cards": access.id_tokens_for(user).exists() or access.may_manage_id_tokens(user),
        "local_lists": access.may_operate(user),
        "admin": access.may_administer(user),
    }
