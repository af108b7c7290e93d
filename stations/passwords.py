"""Charger passwords (security profiles 1 and 2): the allowed form and how they are hashed."""

import re
import secrets
import string

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.exceptions import ValidationError

# OCPP 2.0.1 A00.FR.205: 16 to 40 characters of this set. 1.6 chargers take the same passwords.
PASSWORD_RE = re.compile(r"^[a-zA-Z0-9*\-_=:+|@.]{16,40}$")


def validate_charger_password(raw: str) -> None:
    if not PASSWORD_RE.fullmatch(raw):
        raise ValidationError(
            "A charger password is 16 to 40 characters of a-z A-Z 0-9 * - _ = : + | @ ."
        )


class ChargerPasswordHasher(PBKDF2PasswordHasher):
    """Salted PBKDF2 with fewer rounds than a person's password gets.

    Charger passwords are long machine secrets, and after an outage every charger reconnects at
    once: a million rounds (Django's default for people) would cost ~0.5 s of CPU per handshake.
    """

    algorithm = "charger_pbkdf2"
    iterations = 20_000


# 20 characters: within 2.0.1's 16 to 40, and 20 bytes, the most a 1.6 AuthorizationKey holds.
GENERATED_LENGTH = 20
_ALPHABET = string.ascii_letters + string.digits + "*-_=:+|@."


def charger_password_generate() -> str:
    """A random password every charger takes (about 122 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_LENGTH))
