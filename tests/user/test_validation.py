"""The sign-up input rules on their own: email syntax, display names, password strength."""

from __future__ import annotations

import pytest

from services.platform.errors import InvalidArgument
from services.user.validation import check_display_name, check_email, check_password

EMAIL = "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "password",
    [
        "violet-tangerine-harbour-42",
        "quiet lantern over the marsh",
        "Tr0ub4dor&3-but-longer",
        "x" * 3 + "yzabc" + "1" * 120,  # 128 characters
    ],
)
def test_strong_passwords_pass(password: str) -> None:
    check_password(password, EMAIL)


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pw-1", "characters"),
        ("x" * 129, "characters"),
        ("aaaaaaaaaaaaaaaa", "repetitive"),
        ("abababababababab", "repetitive"),
        ("Password123456!", "common"),
        ("qwertyuiop!!2024", "common"),
        ("correct horse battery staple", "common"),
        ("abcdefghijklmnop", "common"),
        ("123456789012345", "common"),
        ("9876543210987", "common"),
        ("Ada.Lovelace-1815", "email"),
        ("i-am-lovelace-99", "email"),
        ("my-example-passphrase", "email"),
    ],
)
def test_weak_passwords_name_the_field_and_the_rule(password: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_password(password, EMAIL)
    assert raised.value.field_violations[0][0] == "password"
    assert why in raised.value.field_violations[0][1]
    assert password not in raised.value.message  # the rule, never the password


def test_emails_are_normalised_and_validated() -> None:
    assert check_email("  Ada@Example.COM ", "email") == "ada@example.com"
    for bad in ("", "ada", "ada@", "@example.com", "ada@example", "a b@example.com"):
        with pytest.raises(InvalidArgument) as raised:
            check_email(bad, "user.email")
        assert raised.value.field_violations[0][0] == "user.email"


def test_display_names_are_trimmed_and_bounded() -> None:
    assert check_display_name("  Ada  ", "display_name") == "Ada"
    for bad in ("", "   ", "x" * 65, "Ada\nLovelace"):
        with pytest.raises(InvalidArgument):
            check_display_name(bad, "display_name")
