"""Domain errors: what went wrong, in the language of the use case.

The service layer raises these; exactly one place (the errors interceptor) turns them into a
`google.rpc.Status` with an `ErrorInfo{reason, domain, metadata}` detail (plus `BadRequest`
for `InvalidArgument`). This module never imports grpc so `service.py` stays transport-free.

The status code each error maps to is stored as a plain string (the name of the canonical
gRPC code) so the mapping lives next to the error without depending on grpc.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class DomainError(Exception):
    """Base class of every expected failure a use case can report to its caller.

    `reason` is the AIP-193 ErrorInfo reason (UPPER_SNAKE, stable, machine readable);
    `metadata` carries extra machine-readable context (never secrets: it reaches the client).
    """

    code_name: str = "UNKNOWN"
    default_reason: str = "UNKNOWN_ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgument(DomainError):
    """The request is malformed; `field_violations` names each offending field path."""

    code_name = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        field_violations: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.field_violations: list[tuple[str, str]] = list(field_violations)

    @classmethod
    def for_field(
        cls, field: str, description: str, *, reason: str | None = None
    ) -> InvalidArgument:
        """Shorthand for the common case of a single bad field."""
        return cls(
            f"invalid {field}: {description}",
            field_violations=[(field, description)],
            reason=reason,
        )


class NotFound(DomainError):
    code_name = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code_name = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(DomainError):
    code_name = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code_name = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class FailedPrecondition(DomainError):
    code_name = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrency conflict (e.g. etag mismatch); the client may retry from a fresh read."""

    code_name = "ABORTED"
    default_reason = "ABORTED"


class Unavailable(DomainError):
    """A dependency is down; the call is safe to retry with backoff."""

    code_name = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


class ResourceExhausted(DomainError):
    code_name = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


__all__ = [
    "Aborted",
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]
