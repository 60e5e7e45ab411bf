from __future__ import annotations

import base64

import pytest

from services.platform.errors import InvalidArgument
from services.platform.pagination import Cursor, PageTokenCodec, clamp_page_size

SECRET = b"s" * 32
REQUEST: dict[str, object] = {"parent": "users/1", "filter": "state = ACTIVE", "page_size": 10}
CURSOR: Cursor = {"created_at": "2026-01-02T03:04:05.000006+00:00", "id": 42}


def _assert_bad_token(error: InvalidArgument, words: str) -> None:
    assert error.reason == "INVALID_PAGE_TOKEN"
    [(field, description)] = error.field_violations
    assert field == "page_token"
    assert words in description


def test_round_trip_returns_the_cursor() -> None:
    codec = PageTokenCodec(SECRET)
    token = codec.encode(CURSOR, REQUEST)
    assert codec.decode(token, REQUEST) == CURSOR


def test_token_is_url_safe_and_opaque() -> None:
    token = PageTokenCodec(SECRET).encode({"id": "a/b+c?d=e&f"}, REQUEST)
    assert token.replace("-", "").replace("_", "").isalnum()
    assert "a/b" not in token


def test_empty_token_means_first_page() -> None:
    assert PageTokenCodec(SECRET).decode("", REQUEST) is None


def test_page_size_may_change_between_pages() -> None:
    codec = PageTokenCodec(SECRET)
    token = codec.encode(CURSOR, REQUEST)
    assert codec.decode(token, {**REQUEST, "page_size": 99}) == CURSOR
    assert codec.decode(token, {k: v for k, v in REQUEST.items() if k != "page_size"}) == CURSOR


def test_argument_order_does_not_matter() -> None:
    codec = PageTokenCodec(SECRET)
    token = codec.encode(CURSOR, REQUEST)
    assert codec.decode(token, dict(reversed(list(REQUEST.items())))) == CURSOR


@pytest.mark.parametrize(
    "changed",
    [
        {"filter": "state = DELETED"},
        {"parent": "users/2"},
        {"order_by": "name"},
    ],
)
def test_reuse_with_other_arguments_is_rejected(changed: dict[str, str]) -> None:
    codec = PageTokenCodec(SECRET)
    token = codec.encode(CURSOR, REQUEST)
    with pytest.raises(InvalidArgument) as caught:
        codec.decode(token, {**REQUEST, **changed})
    _assert_bad_token(caught.value, "different arguments")


def test_token_of_another_method_is_rejected() -> None:
    token = PageTokenCodec(SECRET, scope="user.ListUsers").encode(CURSOR, REQUEST)
    with pytest.raises(InvalidArgument):
        PageTokenCodec(SECRET, scope="content.ListPosts").decode(token, REQUEST)


def test_token_signed_with_another_secret_is_rejected() -> None:
    token = PageTokenCodec(b"x" * 32).encode(CURSOR, REQUEST)
    with pytest.raises(InvalidArgument) as caught:
        PageTokenCodec(SECRET).decode(token, REQUEST)
    _assert_bad_token(caught.value, "not valid")


def test_every_single_byte_change_is_detected() -> None:
    codec = PageTokenCodec(SECRET)
    raw = bytearray(base64.urlsafe_b64decode(codec.encode(CURSOR, REQUEST) + "=="))
    for index in range(len(raw)):
        forged = bytearray(raw)
        forged[index] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        with pytest.raises(InvalidArgument):
            codec.decode(token, REQUEST)


def test_forged_cursor_with_valid_shape_is_rejected() -> None:
    codec = PageTokenCodec(SECRET)
    raw = base64.urlsafe_b64decode(codec.encode({"id": 42}, REQUEST) + "==")
    forged = raw.replace(b'"id":42', b'"id":41')
    assert forged != raw
    with pytest.raises(InvalidArgument):
        codec.decode(base64.urlsafe_b64encode(forged).rstrip(b"=").decode(), REQUEST)


@pytest.mark.parametrize(
    "token",
    ["not a token", "%%%", "AAAA", "A", "a" * 5000, "Zm9v", "abc/def+ghi"],
)
def test_malformed_tokens_are_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        PageTokenCodec(SECRET).decode(token, REQUEST)
    _assert_bad_token(caught.value, "")


def test_truncated_token_is_rejected() -> None:
    codec = PageTokenCodec(SECRET)
    token = codec.encode(CURSOR, REQUEST)
    for cut in (1, 5, len(token) // 2):
        with pytest.raises(InvalidArgument):
            codec.decode(token[:-cut], REQUEST)


def test_cursor_values_must_be_json_scalars() -> None:
    with pytest.raises(TypeError):
        PageTokenCodec(SECRET).encode({"id": object()}, REQUEST)  # type: ignore[dict-item]


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        PageTokenCodec(b"short")


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(0, 50), (1, 1), (50, 50), (100, 100), (101, 100), (10_000, 100)],
)
def test_clamp_page_size(requested: int, expected: int) -> None:
    assert clamp_page_size(requested) == expected


def test_clamp_page_size_with_custom_bounds() -> None:
    assert clamp_page_size(0, default=10, maximum=20) == 10
    assert clamp_page_size(25, default=10, maximum=20) == 20


def test_negative_page_size_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as caught:
        clamp_page_size(-1)
    assert caught.value.field_violations[0][0] == "page_size"
