"""Secrets never reach a log line: a filter on the log handler rewrites every record.

At ``--log-level DEBUG`` botocore logs each request whole: its headers (``Authorization``
with the access key id and the signature, ``X-Amz-Security-Token`` with the session
token), the canonical request and string to sign, and the signature. A presigned URL
carries the same in its query. :class:`RedactingFilter` replaces all of these, whatever
logger the record comes from (the filter sits on the handler, which every record passes),
in the message, in a traceback and in a stack. It also replaces, wherever they appear,
the literal credentials found in the environment, which no pattern could recognise.
"""

from __future__ import annotations

import logging
import os
import re
import threading

REDACTED = "[REDACTED]"
_ENVIRONMENT_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
_MIN_SECRET_LENGTH = 8
"""Shorter values (a test's ``testing``) are replaced only where a pattern finds them."""
_VALUE = r"[^\s'\"&,;}\]]+"
_PATTERNS = [
    # presigned URL parameters, in a query or percent-encoded in a logged URL
    re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)(?:=|%3D))" + _VALUE),
    # headers as botocore logs them ('X-Amz-Security-Token': b'...'), canonical request lines
    # (x-amz-security-token:...), and names of credential fields in any dict or config dump
    re.compile(
        r"(?i)((?:x-amz-security-token|aws_secret_access_key|aws_session_token|aws_security_token|"
        r"secret_?access_?key|session_?token|secret_key)['\"]?\s*[:=]\s*b?['\"]?)" + _VALUE
    ),
    # Authorization: AWS4-HMAC-SHA256 Credential=AKIA.../..., SignedHeaders=..., Signature=hex;
    # a SigV2 presigned URL's AWSAccessKeyId= and Signature= (base64, percent-encoded)
    re.compile(r"(?i)((?:Credential|AWSAccessKeyId)=)" + _VALUE),
    re.compile(r"(?i)(Signature[=:]\s*)[A-Za-z0-9%+/=_-]{16,}"),
    re.compile(r"(?i)(AWS4-HMAC-SHA256\s+)[A-Za-z0-9+/=]{20,}"),
]
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")

_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears from now on (a credential learned at run time)."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every credential, session token and signature replaced by ``[REDACTED]``."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return _ACCESS_KEY_ID.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record (see the module docstring); it drops none."""

    def __init__(self) -> None:
        super().__init__()
        for name in _ENVIRONMENT_SECRETS:
            register_secret(os.environ.get(name))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call: the formatter reports it; a filter must not raise
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
