"""AIP-158 pagination: page sizes and opaque, tamper-proof page tokens.

A page token carries a keyset cursor (the sort key values of the last row returned) and a
fingerprint of the request's other arguments. It is signed with HMAC-SHA256, so a client
can neither forge a cursor nor reuse a token with a different filter or parent: both come
back as INVALID_ARGUMENT on `page_token`. `page_size` is left out of the fingerprint because
AIP-158 lets a client change it between pages.

    codec = PageTokenCodec(secret, scope="user.ListUsers")
    cursor = codec.decode(request.page_token, {"filter": request.filter})   # None: first page
    ...
    next_page_token = codec.encode({"created_at": last.created_at.isoformat(), "id": last.id},
                                   {"filter": request.filter})
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping

from services.platform.errors import InvalidArgument

CursorValue = str | int | float | bool | None
Cursor = dict[str, CursorValue]

PAGE_TOKEN_FIELD = "page_token"  # noqa: S105 (a field name, not a secret)
PAGE_SIZE_FIELD = "page_size"
INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105 (an ErrorInfo reason)
INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"

_VERSION = b"\x01"
_MAC_SIZE = hashlib.sha256().digest_size
_FINGERPRINT_SIZE = 16
# Arguments a client may change between pages without invalidating the token.
_UNFINGERPRINTED = frozenset({PAGE_SIZE_FIELD, PAGE_TOKEN_FIELD})
# Cursors are a handful of sort keys; anything longer than this is not one of ours.
_MAX_TOKEN_CHARS = 2048
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]+")
_MIN_SECRET_BYTES = 16


def clamp_page_size(page_size: int, *, default: int = 50, maximum: int = 100) -> int:
    """AIP-158: 0 (unset) means `default`, above `maximum` is coerced down, negative is an error."""
    if page_size < 0:
        raise InvalidArgument.for_field(
            PAGE_SIZE_FIELD, "must not be negative", reason=INVALID_PAGE_SIZE
        )
    if page_size == 0:
        return default
    return min(page_size, maximum)


class PageTokenCodec:
    """Encodes and verifies the page tokens of one List method.

    `scope` (e.g. "user.ListUsers") keeps a token minted by one method from being accepted
    by another that shares the secret.
    """

    def __init__(self, secret: bytes, *, scope: str = "") -> None:
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"page token secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._scope = scope

    def encode(self, cursor: Mapping[str, CursorValue], request: Mapping[str, object]) -> str:
        """An opaque URL-safe token for the page after `cursor`, bound to `request`."""
        for name, value in cursor.items():
            if not isinstance(value, CursorValue):
                raise TypeError(f"cursor value {name!r} must be a JSON scalar, got {type(value)}")
        payload = json.dumps(
            {"c": dict(cursor), "f": self._fingerprint(request)},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        body = _VERSION + payload
        token = body + self._mac(body)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def decode(self, token: str, request: Mapping[str, object]) -> Cursor | None:
        """The cursor in `token`, or None for an empty token (the first page).

        Raises InvalidArgument on `page_token` when the token is malformed, was not minted
        by us (or by this method), or was minted for different request arguments.
        """
        if not token:
            return None
        body = self._verified_body(token)
        try:
            payload = json.loads(body[len(_VERSION) :])
        except ValueError:
            raise _invalid("is malformed") from None
        cursor = payload.get("c") if isinstance(payload, dict) else None
        fingerprint = payload.get("f") if isinstance(payload, dict) else None
        if not isinstance(cursor, dict) or not isinstance(fingerprint, str):
            raise _invalid("is malformed")
        if not hmac.compare_digest(fingerprint, self._fingerprint(request)):
            raise _invalid("was issued for a request with different arguments")
        return cursor

    def _verified_body(self, token: str) -> bytes:
        if len(token) > _MAX_TOKEN_CHARS or not _URLSAFE_BASE64.fullmatch(token):
            raise _invalid("is malformed")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _invalid("is malformed") from None
        body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if len(raw) <= len(_VERSION) + _MAC_SIZE or not body.startswith(_VERSION):
            raise _invalid("is malformed")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise _invalid("is not valid")
        return body

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()

    def _fingerprint(self, request: Mapping[str, object]) -> str:
        arguments = {k: v for k, v in request.items() if k not in _UNFINGERPRINTED}
        canonical = json.dumps(
            [self._scope, arguments], sort_keys=True, separators=(",", ":"), default=str
        )
        digest = hashlib.sha256(canonical.encode()).digest()[:_FINGERPRINT_SIZE]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _invalid(problem: str) -> InvalidArgument:
    # One reason for every failure: the client's remedy is always to restart the listing.
    return InvalidArgument.for_field(
        PAGE_TOKEN_FIELD, f"{problem}; start again without a page_token", reason=INVALID_PAGE_TOKEN
    )
