"""Structured JSON logs: one object per line, request-scoped fields, secrets redacted.

Every log line emitted while an RPC is being served carries the request's `trace_id` (and
`request_id`, `rpc_method`) because the logging interceptor binds them in a context variable
that the formatter reads. Redaction happens in the formatter, the last place before bytes
leave the process, so a careless `logger.info("...", extra={"password": p})` is still safe.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any, Final

REDACTED: Final = "[REDACTED]"

# Keys whose values are never logged, matched case-insensitively as substrings so that
# `new_password`, `x-access-token` or `Authorization` are all caught.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|token|authori[sz]ation|secret|cookie|api[-_]?key|credential|private[-_]?key",
    re.IGNORECASE,
)
# Values that look like credentials wherever they appear, even inside free text.
_SECRET_VALUES: Final = (
    # "Bearer <anything>" / "Basic <anything>" as sent in an authorization header.
    re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    # A compact JWS/JWT: three base64url segments, the first one a JSON header ("eyJ").
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    # key=value / key: value pairs with a secret-looking key, e.g. in an exception message.
    re.compile(
        r"(?P<key>\b[\w-]*(?:password|passwd|token|secret|authorization|cookie)[\w-]*)"
        r"(?P<sep>[\"']?\s*[=:]\s*[\"']?)[^\s,;&\"'}]+",
        re.IGNORECASE,
    ),
)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)

_NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})
_request_fields: ContextVar[Mapping[str, str]] = ContextVar(
    "mesh_log_request_fields", default=_NO_FIELDS
)


def is_secret_key(key: str) -> bool:
    """True when a field named `key` must never have its value logged."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """Masks credential-looking substrings (bearer tokens, JWTs, `password=...`) in free text."""
    for pattern in _SECRET_VALUES:
        if "key" in pattern.groupindex:
            text = pattern.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Returns a JSON-friendly copy of `value` with secret keys and secret-looking text masked."""
    if _depth > 8:
        return "..."
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if is_secret_key(str(k)) else redact(v, _depth=_depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth=_depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Adds `fields` to every log line emitted inside the block (and tasks started in it)."""
    token = _request_fields.set({**_request_fields.get(), **fields})
    try:
        yield
    finally:
        _reset(token)


def bind_log_context(**fields: str) -> None:
    """Adds `fields` to the current context without a block (the RPC's context dies with it)."""
    _request_fields.set({**_request_fields.get(), **fields})


def current_log_context() -> Mapping[str, str]:
    return _request_fields.get()


def current_trace_id() -> str | None:
    """The trace id of the RPC being served, if any."""
    return _request_fields.get().get("trace_id")


def _reset(token: Any) -> None:
    # A context manager exited from another Context (e.g. an async generator finalised by the
    # event loop) cannot reset; the value dies with that Context anyway.
    with suppress(ValueError):
        _request_fields.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, context, extras."""

    def __init__(self, service_name: str | None = None) -> None:
        super().__init__()
        self._service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        if self._service_name:
            entry["service"] = self._service_name
        entry.update(_request_fields.get())
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = REDACTED if is_secret_key(key) else redact(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        if record.stack_info:
            entry["stack"] = redact_text(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


_HANDLER_MARK: Final = "_mesh_json_handler"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time, not the stream of start-up.

    A handler bound to the stderr of its creation keeps writing to it after it was replaced
    and closed (pytest's capture, a daemon's redirect), and every later line fails.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


def configure_logging(
    level: str | int = "INFO",
    *,
    service_name: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Routes every logger to one JSON handler on `stream` (stderr by default).

    Idempotent: a previous handler installed by this function is replaced, handlers installed
    by others (e.g. pytest's capture) are left alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream else _StderrHandler()
    handler.setFormatter(JsonFormatter(service_name))
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level)
    # gRPC core and the OTLP exporter are chatty at INFO; their warnings still come through.
    for noisy in ("grpc._cython", "opentelemetry.exporter"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


__all__ = [
    "REDACTED",
    "JsonFormatter",
    "bind_log_context",
    "configure_logging",
    "current_log_context",
    "current_trace_id",
    "is_secret_key",
    "log_context",
    "redact",
    "redact_text",
]
