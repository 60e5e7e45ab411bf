"""Sign-up input rules: email normalisation and syntax, display names, password strength.

The contract's protovalidate rules already bound lengths at the edge of the process; these
checks are the service's own (they also hold for callers that skip the interceptor) and add
what a proto rule cannot say: a password must not be guessable from the email or a list of
common passwords (NIST SP 800-63B 5.1.1.2).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Final

from services.platform.errors import InvalidArgument

MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 128
MAX_EMAIL: Final = 254
MAX_DISPLAY_NAME: Final = 64
# Fewer distinct characters than this is a pattern ("aaaaaaaaaaaa", "abababababab").
MIN_DISTINCT: Final = 5
# Parts of the email at least this long must not appear in the password.
_MIN_EMAIL_PART: Final = 3

_EMAIL: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
# Common passwords and the words most of them are built from. A password is refused when it
# is one of them, or one of them padded with digits and symbols ("Password123!").
_COMMON: Final = frozenset(
    {
        "password",
        "passw0rd",
        "passphrase",
        "qwerty",
        "qwertyuiop",
        "azerty",
        "letmein",
        "welcome",
        "iloveyou",
        "admin",
        "administrator",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "sunshine",
        "princess",
        "trustno1",
        "abc",
        "abcdef",
        "abcdefgh",
        "changeme",
        "secret",
        "master",
        "superman",
        "starwars",
        "whatever",
        "correcthorsebatterystaple",
        "123456789012",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "qazwsxedcrfv",
        "asdfghjkl",
        "zxcvbnm",
    }
)
_PADDING: Final = re.compile(r"[\d\W_]+")


def normalise_email(email: str) -> str:
    """The canonical form of an email: trimmed and lower-cased (the auth service agrees)."""
    return email.strip().lower()


def check_email(email: str, field: str) -> str:
    """The normalised email; INVALID_ARGUMENT on `field` when it is not a valid address."""
    normalised = normalise_email(email)
    if not normalised:
        raise InvalidArgument.for_field(field, "is required")
    if len(normalised) > MAX_EMAIL or not _EMAIL.fullmatch(normalised):
        raise InvalidArgument.for_field(field, "must be a valid email address")
    return normalised


def check_display_name(display_name: str, field: str) -> str:
    name = display_name.strip()
    if not name:
        raise InvalidArgument.for_field(field, "must not be empty")
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidArgument.for_field(field, f"must be at most {MAX_DISPLAY_NAME} characters")
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise InvalidArgument.for_field(field, "must not contain control characters")
    return name


def check_password(password: str, email: str, field: str = "password") -> None:
    """INVALID_ARGUMENT on `field` unless `password` meets the policy for this `email`.

    The messages describe the rule broken, never the password itself.
    """
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidArgument.for_field(
            field, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", reason="WEAK_PASSWORD"
        )
    lowered = password.lower()
    if len(set(lowered)) < MIN_DISTINCT:
        raise InvalidArgument.for_field(
            field, "is too repetitive; use more different characters", reason="WEAK_PASSWORD"
        )
    core = _PADDING.sub("", lowered)
    if lowered in _COMMON or core in _COMMON or _is_sequence(lowered):
        raise InvalidArgument.for_field(
            field, "is too common; choose a less predictable one", reason="WEAK_PASSWORD"
        )
    local, _, domain = normalise_email(email).partition("@")
    parts = [local, *re.split(r"[.+_-]", local), domain.split(".")[0]]
    squashed = _PADDING.sub("", lowered)
    for part in parts:
        if len(part) >= _MIN_EMAIL_PART and (part in lowered or part in squashed):
            raise InvalidArgument.for_field(
                field, "must not contain your email address", reason="WEAK_PASSWORD"
            )


def _is_sequence(text: str) -> bool:
    """Runs of consecutive characters ("abcdefghijkl", "987654321098") are guessed first."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    return steps <= {1, -9} or steps <= {-1, 9}
