"""No secret reaches a log, whatever logger, level or handler a person switches on.

`install()` (called once by `mq_cutover.observability` at import) wraps `logging.Logger.makeRecord`,
which every standard logger calls - botocore, boto3, urllib3, moto, Powertools' service logger -
once a record is above its logger's level (records below it are never built, so they cost
nothing). The record factory (`logging.setLogRecordFactory`) would be the obvious hook, but
`extra={...}` attributes are attached after the factory returns; wrapping `makeRecord` sees them.

Each record is redacted in place before any filter or handler sees it:
- the message: `msg % args` formatted once and redacted as text; a dict message (Powertools'
  structured logs, `POWERTOOLS_LOGGER_LOG_EVENT`) stays a dict, redacted key by key;
- `extra` attributes, the same way;
- an exception (`exc_info`): when its text, notes or chained exceptions hold a secret, the
  record carries a stand-in with the same class name, module and traceback and the redacted
  text; the exception the program raised is not touched.

What is redacted (`***`):
- the value of a sensitive key (`SENSITIVE_KEY`: taskToken, SecretString, SecretBinary,
  password, SecretAccessKey, SessionToken, Authorization, X-Amz-Security-Token, signature, ...)
  in a dict, JSON text (escaped or not, DynamoDB's `{"S": ...}` included), a Python repr
  (`b'...'` bodies included), `key=value` (url-encoded bodies, kwargs), `key: value` header
  lines, url-encoded JSON and XML elements;
- the signature of an approval link, `<id>.<approver>.<expiry>.<tag>` or the older
  `<id>.<expiry>.<tag>`: the tag becomes `***` (the gate's id alone opens nothing and stays,
  so a log line can still be matched to its approval record);
- a URL's password (`amqp://user:***@host`);
- any value registered as a secret, also in its JSON-escaped, repr and url-encoded forms:
  every value read from Secrets Manager by any boto3 client created after `install()` (a
  botocore hook; a JSON secret's password fields too), the Lambda's own AWS secret key and
  session token, and whatever the product passes to `register_secret`.

A record that cannot be redacted (a bug here) is withheld, never logged as it was.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

REDACTED = "***"

_KEY_NAMES = (
    r"task[_-]?token|token"
    r"|secret[_-]?string|secret[_-]?binary|secret|client[_-]?secret"
    r"|[a-z_-]*passw(?:or)?d|pwd"
    r"|(?:aws[_-]?)?secret[_-]?(?:access[_-]?)?key|private[_-]?key|api[_-]?key|x-api-key"
    r"|(?:aws[_-]?)?session[_-]?token|(?:x-amz-)?security[_-]?token"
    r"|(?:access|refresh|id|auth|bearer)[_-]?token"
    r"|(?:proxy-)?authorization|(?:x-amz-)?signature|(?:set-)?cookie"
)
SENSITIVE_KEY = re.compile(rf"(?:{_KEY_NAMES})", re.IGNORECASE)

# A quoted string, escaped or not (`"v"`, `\"v\"`, `'v'`, `b'v'`): it ends at the same quote,
# with the same escaping, not itself escaped. A value with no closing quote on its line is
# redacted to the end of the line: more than needed, never less.
_QUOTED = (
    r"b?(?P<{p}vp>\\*)(?P<{p}vq>[\"'])"
    r"(?:(?P<{p}v>[^\n]*?)(?<!\\)(?P={p}vp)(?P={p}vq)|(?P<{p}open>[^\n]*))"
)
# DynamoDB's attribute value: {"S": "..."} / {'B': b'...'}.
_DYNAMO = r"(?:\{\s*\\*[\"'][SB]\\*[\"']\s*:\s*)?"
_KEY_BOUNDARY = r"(?<![A-Za-z0-9_-])"

_PATTERNS = [
    # "key": "value", 'key': b'value', \"key\": {\"S\": \"value\"}
    r"(?P<kp>\\*)(?P<kq>[\"'])(?P<qkey>"
    + _KEY_NAMES
    + r")(?P=kp)(?P=kq)\s*:\s*"
    + _DYNAMO
    + r"(?:"
    + _QUOTED.format(p="q")
    + r"|(?P<qbare>(?!null\b|none\b|true\b|false\b)[^\s,}\])\"'{\[]+))",
    # %22key%22%3A%22value%22 (JSON inside a url-encoded body)
    r"%22(?P<ukey>" + _KEY_NAMES + r")%22(?:%3A|:)(?:\+|%20)*%22(?P<uv>.*?)(?<!%5C)%22",
    # <Key>value</Key>
    r"<(?P<xkey>" + _KEY_NAMES + r")>(?P<xv>[^<]*)</(?P=xkey)>",
    # One alternative for a key outside quotes (one pass over the text, not four):
    # key='value' (kwargs, reprs of objects), key=value (url-encoded bodies and queries),
    # key: value (header lines; botocore's `Signature:\n...`), and key:value, for headers only
    # (botocore's canonical request; `_replace` leaves `arn:...:secret:name` alone).
    _KEY_BOUNDARY
    + r"(?P<bkey>"
    + _KEY_NAMES
    + r")(?:\s*=\s*"
    + _QUOTED.format(p="e")
    + r"|=(?P<av>[^&\s,;)'\"\]}>]+)"
    + r"|:(?:[ \t]+|[ \t]*\r?\n[ \t]*)(?P<hv>[^\s\"'][^\r\n]*)"
    + r"|:(?P<cv>[^\s][^\r\n]*))",
    # scheme://user:password@host
    # (the scheme is bounded and anchored: an unbounded `\b[A-Za-z][A-Za-z0-9+.-]*://` retries
    # at every '-' or '.', and 40 KB of dotted names took seconds)
    r"(?P<scheme>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^:/@\s'\"]*:)"
    r"(?P<userpass>[^@/\s'\"]+)@",
    # approval links: keep the gate id, approver and expiry, drop the tag
    _KEY_BOUNDARY
    + r"(?P<link>[A-Za-z0-9_-]{8,64}\.(?:[a-z0-9][a-z0-9-]{0,31}\.)?[1-9]\d{8,10}\.)"
    + r"(?P<tag>[A-Za-z0-9_-]{16,})",
]
_TEXT = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)

_SECRET_GROUPS = (
    *("qv", "qopen", "qbare", "uv", "xv", "ev", "eopen", "av", "hv", "cv", "userpass", "tag"),
)


_HEADER_KEYS = frozenset(
    {"x-amz-security-token", "authorization", "proxy-authorization", "x-api-key", "cookie"}
)


def _replace(match: re.Match[str]) -> str:
    text = match.group(0)
    start = match.start()
    if match.group("cv") is not None and match.group("bkey").lower() not in _HEADER_KEYS:
        # `token:x` that is not a header line: not a secret by itself, but what it swallowed
        # (the rest of the line) is still looked at.
        cut = match.start("cv") - start
        return text[:cut] + redact_text(text[cut:])
    for name in _SECRET_GROUPS:
        if match.group(name) is not None:
            a, b = match.start(name) - start, match.end(name) - start
            return text[:a] + REDACTED + text[b:]
    return text


# --- values registered at runtime --------------------------------------------------------
_MIN_SECRET_LENGTH = 6
_MAX_REGISTERED = 512
_registered: dict[str, None] = {}  # insertion-ordered: the oldest is dropped past the cap
_registered_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def _variants(value: str) -> set[str]:
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
    }


def register_secret(value: str | bytes | bytearray | None) -> None:
    """From now on, `value` is redacted wherever it appears in a log record. Call it where a
    secret is loaded (a signing key, a password). Values shorter than 6 characters are not
    registered (they would redact ordinary words)."""
    global _registered_pattern
    if not value:
        return
    forms: set[str] = set()
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        forms.add(base64.b64encode(raw).decode())
        try:
            forms |= _variants(raw.decode())
        except UnicodeDecodeError:
            forms.add(repr(raw)[2:-1])
    else:
        forms |= _variants(str(value))
    forms = {f for f in forms if len(f) >= _MIN_SECRET_LENGTH}
    if not forms:
        return
    with _lock:
        if all(f in _registered for f in forms):
            return
        for form in forms:
            _registered[form] = None
        while len(_registered) > _MAX_REGISTERED:
            del _registered[next(iter(_registered))]
        ordered = sorted(_registered, key=len, reverse=True)
        _registered_pattern = re.compile("|".join(re.escape(f) for f in ordered))


def forget_registered_secrets() -> None:
    """Tests only: start from an empty registry."""
    global _registered_pattern
    with _lock:
        _registered.clear()
        _registered_pattern = None


# --- text and values -------------------------------------------------------------------------
def redact_text(text: str) -> str:
    """`text` with every secret it holds replaced by `***`."""
    redacted = _TEXT.sub(_replace, text)
    pattern = _registered_pattern
    if pattern is not None:
        redacted = pattern.sub(REDACTED, redacted)
    return redacted


def _mask(value: Any) -> Any:
    """The value of a sensitive key: its shape kept ({"S": ...}, lists), every leaf hidden."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return REDACTED


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` (dicts, lists, strings, bytes, any object) with every secret redacted;
    the value itself when nothing in it needs redacting."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "surrogateescape")
        redacted = redact_text(text)
        return value if redacted == text else redacted.encode("utf-8", "surrogateescape")
    if _depth > 32:
        return REDACTED
    if isinstance(value, dict):
        return {
            (redact_text(k) if isinstance(k, str) else k): (
                _mask(v)
                if isinstance(k, str) and SENSITIVE_KEY.fullmatch(k)
                else redact_value(v, _depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(v, _depth + 1) for v in value]
        return items if isinstance(value, list) else type(value)(items)
    # Anything else is logged as its str() (Powertools) or repr() (inside a %-formatted dict).
    try:
        as_str, as_repr = str(value), repr(value)
    except Exception:
        return REDACTED
    redacted = redact_text(as_str)
    if redacted == as_str and redact_text(as_repr) == as_repr:
        return value
    return redacted


# --- exceptions ------------------------------------------------------------------------------
class _RedactedException(Exception):
    """Stands in for an exception whose text held a secret (see `_stand_in`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_stand_in_classes: dict[type, type[_RedactedException]] = {}


def _stand_in_class(cls: type) -> type[_RedactedException]:
    if cls not in _stand_in_classes:
        _stand_in_classes[cls] = type(
            cls.__name__,
            (_RedactedException,),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
    return _stand_in_classes[cls]


def _stand_in(exc: BaseException, seen: dict[int, BaseException]) -> BaseException:
    """`exc` itself when neither its text, notes nor chain hold a secret; else a stand-in that
    formats the same (class name, module, traceback, chain) with the text redacted."""
    if id(exc) in seen:
        return seen[id(exc)]
    seen[id(exc)] = exc
    cause = _stand_in(exc.__cause__, seen) if exc.__cause__ is not None else None
    context = _stand_in(exc.__context__, seen) if exc.__context__ is not None else None
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    redacted = redact_text(text)
    notes = getattr(exc, "__notes__", None)
    redacted_notes = [redact_text(str(n)) for n in notes] if isinstance(notes, list) else None
    if (
        redacted == text
        and cause is exc.__cause__
        and context is exc.__context__
        and redacted_notes == notes
    ):
        return exc
    stand_in = _stand_in_class(type(exc))(redacted)
    stand_in.__cause__ = cause
    stand_in.__context__ = context
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    if redacted_notes is not None:
        stand_in.__notes__ = redacted_notes
    seen[id(exc)] = stand_in
    return stand_in


# --- log records -----------------------------------------------------------------------------
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: message and args, `extra` attributes, exception, stack."""
    if record.args:
        try:
            record.msg = record.getMessage()
            record.args = ()
        except Exception:  # a bad format string: logging reports it later; args redacted here
            record.args = redact_value(record.args)
    record.msg = redact_value(record.msg)
    for name, value in list(record.__dict__.items()):
        if name not in _STANDARD_ATTRIBUTES:
            record.__dict__[name] = (
                _mask(value) if SENSITIVE_KEY.fullmatch(name) else redact_value(value)
            )
    if isinstance(record.exc_info, tuple) and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        stand_in = _stand_in(exc, {})
        if stand_in is not exc:
            record.exc_info = (type(stand_in), stand_in, record.exc_info[2])
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def _withhold(record: logging.LogRecord) -> None:
    record.msg = "log record withheld: it could not be redacted"
    record.args = ()
    record.exc_info = None
    record.exc_text = None
    for name in list(record.__dict__):
        if name not in _STANDARD_ATTRIBUTES:
            del record.__dict__[name]


_MakeRecord = Callable[..., logging.LogRecord]
_original_make_record: _MakeRecord | None = None


def _make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _original_make_record is not None
    record = _original_make_record(self, *args, **kwargs)
    try:
        redact_record(record)
    except Exception:  # never let a secret through because redaction broke
        _withhold(record)
    return record


def _register_secrets_manager_values(parsed: Any = None, **_: Any) -> None:
    """botocore `after-call.secrets-manager` hook: whatever a secret holds is a secret."""
    if not isinstance(parsed, dict):
        return
    for value in [parsed, *(parsed.get("SecretValues") or [])]:
        if not isinstance(value, dict):
            continue
        register_secret(value.get("SecretBinary"))
        string = value.get("SecretString")
        register_secret(string)
        try:
            document = json.loads(string) if isinstance(string, str) else None
        except ValueError:
            document = None
        if isinstance(document, dict):  # {"username": ..., "password": ...}: not the username
            for key, field_value in document.items():
                if SENSITIVE_KEY.fullmatch(str(key)) and isinstance(field_value, str):
                    register_secret(field_value)


_SECRETS_MANAGER_HOOK = ("after-call.secrets-manager", _register_secrets_manager_values)


def install() -> None:
    """Redact every log record from now on (idempotent)."""
    global _original_make_record
    with _lock:
        if _original_make_record is None:
            _original_make_record = logging.Logger.makeRecord
            logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]
    # Every botocore session created from now on registers what Secrets Manager returns (the
    # default boto3 session too, if it exists already).
    from botocore import handlers

    if _SECRETS_MANAGER_HOOK not in handlers.BUILTIN_HANDLERS:
        handlers.BUILTIN_HANDLERS.append(_SECRETS_MANAGER_HOOK)
        import boto3

        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.register(*_SECRETS_MANAGER_HOOK)
    # The function's own credentials (Lambda puts them in its environment). Short values are
    # placeholders (tests, the offline harness), not keys: a real one is 40 characters or more.
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(name, "")
        if len(value) >= 16:
            register_secret(value)


def uninstall() -> None:
    """Tests only: log records are no longer redacted."""
    global _original_make_record
    with _lock:
        if _original_make_record is not None:
            logging.Logger.makeRecord = _original_make_record  # type: ignore[method-assign]
            _original_make_record = None
    from botocore import handlers

    if _SECRETS_MANAGER_HOOK in handlers.BUILTIN_HANDLERS:
        handlers.BUILTIN_HANDLERS.remove(_SECRETS_MANAGER_HOOK)


def installed() -> bool:
    return _original_make_record is not None


def json_serializer(log: dict[str, Any]) -> str:
    """Powertools' JSON serializer, redacting again what Powertools adds outside the record
    (appended keys, the correlation id)."""
    return json.dumps(redact_value(log), default=str, separators=(",", ":"), ensure_ascii=False)
