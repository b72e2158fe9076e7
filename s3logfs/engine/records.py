"""Records: one line per record for AWS deliveries that are not one line per event.

This is the last stage of the codec layer: after decompression, a record decoder turns
an object's text into lines (README, "One line per record"). What it writes is what the disk cache
holds, so ``stream``, the per-key files and ``s3logfs cat`` all see the same lines.

* ``json``: top-level JSON values (Firehose writes them back to back, ``{"a":1}{"a":2}``)
  go one per line. A value alone on its line stays byte for byte; one that shares its line
  with another value, or spans several lines, is written compactly.
* ``cloudtrail``: the elements of ``{"Records":[...]}`` go one per line, compactly, in
  file order. A JSON value that is not such a document is written compactly on one line.
* ``cwl``: each CloudWatch Logs subscription envelope becomes one line per log event,
  ``ISO-8601-UTC-timestamp message``; ``CONTROL_MESSAGE`` envelopes are dropped. An
  event's message keeps its inner newlines (as a CloudWatch export does) but loses its
  trailing ones.
* ``auto``: the first bytes of each object choose one of the above, else ``none``.

"Compactly" means ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``: so
non-ASCII text stays UTF-8, as CloudTrail writes it, and ``grep`` finds it. A value
holding a lone surrogate escape (``"\\ud800"``), which UTF-8 cannot carry, is written
with ``ensure_ascii=True`` instead.

How it streams
    Text is buffered only from the start of the record being parsed; each complete record
    is parsed by the C JSON decoder (``raw_decode``) and written out at once, so memory is
    bounded by the largest record, not the object: a 50 MB CloudTrail file never sits in
    memory whole. A record cut by a chunk boundary is retried once the buffer has doubled,
    which keeps the work linear in the record's size.

Records that cannot be parsed
    They pass through as they are, on their own line, and are counted (``unparsed``),
    never dropped. A broken value extends to where its brackets close, or to the end of
    the line where parsing failed, whichever comes first; parsing resumes after it. At the
    top level, text that does not start with ``{`` or ``[`` is taken a line at a time. A record longer than :data:`MAX_RECORD_CHARS` passes through up to the end of
    its line unparsed, so that no input can make memory grow without bound.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

NONE = "none"
JSON = "json"
CWL = "cwl"
CLOUDTRAIL = "cloudtrail"
AUTO = "auto"
MODES = (NONE, JSON, CWL, CLOUDTRAIL, AUTO)
"""The values of ``--records``, the default first."""

MAX_RECORD_CHARS = 64 << 20
"""The longest record parsed. CloudWatch Logs caps a subscription envelope at about 1 MB
compressed, CloudTrail a record at 256 KB; beyond this a record passes through unparsed."""
SNIFF_BYTES = 4096
"""How much decoded text ``auto`` looks at: the CloudTrail header and a CloudWatch Logs
envelope's ``messageType`` fall in its first few hundred bytes."""
_SLACK = 16
"""A parse error this close to the end of the buffer may only mean that the record goes on
in the next chunk: ``tru``, ``1e+`` or half a ``\\uXXXX`` escape pair."""

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")
_ARRAY_GAP = re.compile(r"[ \t\r\n,]*")
_HEADER = re.compile(r'\{[ \t\r\n]*"Records"[ \t\r\n]*:[ \t\r\n]*\[')
_HEADER_START = re.compile(r'\{[ \t\r\n]*(?:"(?:R(?:e(?:c(?:o(?:r(?:d(?:s(?:"[ \t\r\n]*(?::[ \t\r\n]*)?)?)?)?)?)?)?)?)?)?')
"""What a buffer that ends inside the CloudTrail header can hold: wait for more."""
_CWL_SNIFF = re.compile(r'"messageType"[ \t\r\n]*:[ \t\r\n]*"(?:DATA|CONTROL)_MESSAGE"')
_STRUCTURE = re.compile(r'["{}\[\],\n]')
_STRING_REST = re.compile(r'(?:[^"\\\n]|\\[^\n])*"')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LINE_END = "\r\n"


def compact(value: Any) -> bytes:
    """``value`` as one line of compact JSON, UTF-8 (see the module docstring)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate escape in the input
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def _skip(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where the run that ``pattern`` (which matches the empty string too) ends, from ``pos``."""
    match = pattern.match(text, pos)
    assert match is not None
    return match.end()


def _raw(text: str) -> bytes:
    """Text cut from the input, back to the input's bytes (it was decoded with surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class _Parsed:
    """One record found in the buffer: its end, and its value unless it is broken."""

    end: int
    value: Any = None
    ok: bool = True


def _parse(text: str, pos: int, final: bool, by_line: bool) -> _Parsed | None:
    """The record that starts at ``pos``, or None if the buffer may end inside it.

    With ``by_line``, text that starts with neither ``{`` nor ``[`` is one line.
    """
    if by_line and text[pos] not in "{[":
        return _parse_line(text, pos, final)
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as error:
        if not final and (error.msg.startswith("Unterminated string") or error.pos >= len(text) - _SLACK):
            return None
        failed_at = error.pos
    except RecursionError:  # nested deeper than the decoder goes
        failed_at = pos
    else:
        if end == len(text) and not final and text[pos] not in '{["':  # a number may go on
            return None
        return _Parsed(end, value)
    broken_end = _broken_end(text, pos, failed_at, final)
    return None if broken_end is None else _Parsed(broken_end, ok=False)


def _parse_line(text: str, pos: int, final: bool) -> _Parsed | None:
    newline = text.find("\n", pos)
    if newline < 0:
        if not final:
            return None
        newline = len(text)
    end = pos + len(text[pos:newline].rstrip(" \t\r"))  # JSON's whitespace only: the rest is the line's
    try:
        return _Parsed(end, json.loads(text[pos:end]))
    except (ValueError, RecursionError):
        return _Parsed(end, ok=False)


def _broken_end(text: str, pos: int, failed_at: int, final: bool) -> int | None:
    """Where a record that failed to parse at ``failed_at`` ends; None if not known yet."""
    candidates = [end for end in (_structure_end(text, pos), text.find("\n", failed_at)) if end is not None and end >= 0]
    if not candidates:
        return len(text) if final else None
    return max(pos + 1, min(candidates))


def _structure_end(text: str, pos: int) -> int | None:
    """Where the value starting at ``pos`` ends by its brackets and quotes alone, or None.

    A value that is not a container ends at a comma, a closing bracket or a newline; a
    string broken by a raw newline ends there.
    """
    depth = 0
    index = pos
    while True:
        match = _STRUCTURE.search(text, index)
        if match is None:
            return None
        char, index = match.group(), match.end()
        if char == '"':
            rest = _STRING_REST.match(text, index)
            if rest is None:
                newline = text.find("\n", index)
                return newline if newline >= 0 else None
            index = rest.end()
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                return index if depth == 0 else match.start()
        elif depth == 0:  # a comma or a newline after a scalar
            return match.start()


class RecordDecoder:
    """The machinery every mode shares: text buffering, the size bound, the output.

    Subclasses implement :meth:`_consume`, which parses what it can from the buffer,
    appends output lines and returns how much of the buffer it used. Text waiting to be
    parsed is kept as a list of pieces, joined only when a parse is due, so a long record
    arriving in many chunks costs linear time.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._pieces: list[str] = []
        self._size = 0
        """Characters waiting in ``_pieces``: the start of a record that is not complete yet."""
        self._retry_at = 0
        self._skip_to_newline = False
        self._out: list[bytes] = []
        self.unparsed = 0

    def decode(self, data: bytes) -> bytes:
        self._add(self._text.decode(data))
        if self._size < self._retry_at:
            return self._take()
        return self._drain(final=False)

    def flush(self) -> bytes:
        self._add(self._text.decode(b"", final=True))
        if self._skip_to_newline:  # the oversized record runs to the end of the object
            self._out.append(b"\n")
            self._skip_to_newline = False
        return self._drain(final=True)

    def _add(self, text: str) -> None:
        if self._skip_to_newline:
            text = self._pass_to_newline(text)
        if text:
            self._pieces.append(text)
            self._size += len(text)

    def _drain(self, final: bool) -> bytes:
        buffer = "".join(self._pieces)
        buffer = buffer[self._consume(buffer, final) :]
        if len(buffer) > MAX_RECORD_CHARS:
            self._oversized(buffer)
            buffer = ""
        self._pieces = [buffer] if buffer else []
        self._size = len(buffer)
        self._retry_at = min(2 * len(buffer), MAX_RECORD_CHARS + 1)
        return self._take()

    def _oversized(self, text: str) -> None:
        """Give up on a record too long to parse: it passes through, up to its line's end."""
        log.warning("a record longer than %d characters passes through unparsed", MAX_RECORD_CHARS)
        self._reset()
        self.unparsed += 1
        self._out.append(_raw(text))
        self._skip_to_newline = True

    def _pass_to_newline(self, text: str) -> str:
        """After an oversized record: its rest, up to its line's end, goes out as it is.
        Returns the text after that line."""
        newline = text.find("\n")
        if newline < 0:
            self._out.append(_raw(text))
            return ""
        self._out.append(_raw(text[: newline + 1]))
        self._skip_to_newline = False
        return text[newline + 1 :]

    def _take(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _line(self, data: bytes) -> None:
        self._out.append(data)
        self._out.append(b"\n")

    def _broken(self, text: str) -> None:
        """Pass a record that cannot be parsed through, on its own line, and count it."""
        self.unparsed += 1
        self._line(_raw(text))

    def _consume(self, text: str, final: bool) -> int:
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget the state of the document being parsed (after an oversized record)."""


class JsonRecords(RecordDecoder):
    """``--records json``: one JSON value per line.

    Whitespace between two values is kept when it holds a newline and becomes one newline
    otherwise. A value waits (``_pending``) until the whitespace after it shows whether it
    was alone on its line: then it is written as it is, else compactly.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: tuple[str, _Parsed, bool] | None = None
        """The last value found: its text, the parse, and whether its line starts with it."""
        self._spaces = ""
        """Whitespace after the pending value, while it holds no newline."""

    def _consume(self, text: str, final: bool) -> int:
        pos = 0
        while True:
            start = _skip(_SPACE, text, pos)
            self._whitespace(text[pos:start])
            if start == len(text):
                if final:
                    self._finish()
                return start
            parsed = _parse(text, start, final, by_line=True)
            if parsed is None:
                return start
            if not parsed.ok:
                self.unparsed += 1
            self._found(text[start : parsed.end], parsed)
            pos = parsed.end

    def _whitespace(self, text: str) -> None:
        if self._pending is None:
            self._out.append(_raw(text))
        elif "\n" in text:
            self._write_pending(followed_by_newline=True)
            self._out.append(_raw(self._spaces + text))
            self._spaces = ""
        else:
            self._spaces += text

    def _found(self, raw: str, parsed: _Parsed) -> None:
        starts_line = self._pending is None
        if self._pending is not None:  # two values on one line: a newline between them
            self._write_pending(followed_by_newline=False)
            self._out.append(b"\n")
            self._spaces = ""
        self._pending = (raw, parsed, starts_line)

    def _write_pending(self, followed_by_newline: bool) -> None:
        assert self._pending is not None
        raw, parsed, starts_line = self._pending
        self._pending = None
        alone = starts_line and followed_by_newline and "\n" not in raw
        self._out.append(_raw(raw) if alone or not parsed.ok else compact(parsed.value))

    def _finish(self) -> None:
        if self._pending is not None:
            self._write_pending(followed_by_newline=True)
            self._out.append(b"\n")
            self._spaces = ""

    def _reset(self) -> None:
        self._finish()


class CloudTrailRecords(RecordDecoder):
    """``--records cloudtrail``: each element of ``{"Records":[...]}`` on its own line."""

    _TOP, _ARRAY, _AFTER = range(3)

    def __init__(self) -> None:
        super().__init__()
        self._state = self._TOP
        self._steps = {self._TOP: self._top, self._ARRAY: self._element, self._AFTER: self._after}

    def _consume(self, text: str, final: bool) -> int:
        pos = 0
        while True:
            if self._state == self._ARRAY:
                pos = _skip(_ARRAY_GAP, text, pos)
            else:
                pos = _skip(_SPACE, text, pos)
            if pos == len(text):
                return pos
            moved = self._steps[self._state](text, pos, final)
            if moved is None:
                return pos
            pos = moved

    def _top(self, text: str, pos: int, final: bool) -> int | None:
        header = _HEADER.match(text, pos)
        if header is not None:
            self._state = self._ARRAY
            return header.end()
        if not final and _HEADER_START.fullmatch(text, pos):
            return None
        parsed = _parse(text, pos, final, by_line=True)
        if parsed is None:
            return None
        if parsed.ok:  # JSON, but not a CloudTrail document: one compact line
            self._line(compact(parsed.value))
        else:
            self._broken(text[pos : parsed.end])
        return parsed.end

    def _element(self, text: str, pos: int, final: bool) -> int | None:
        if text[pos] == "]":
            self._state = self._AFTER
            return pos + 1
        parsed = _parse(text, pos, final, by_line=False)
        if parsed is None:
            return None
        if parsed.ok:
            self._line(compact(parsed.value))
        else:
            self._broken(text[pos : parsed.end])
        return parsed.end

    def _after(self, text: str, pos: int, final: bool) -> int | None:
        """After the array: the document's ``}``, or anything else passed through to its line's end."""
        self._state = self._TOP
        if text[pos] == "}":
            return pos + 1
        newline = text.find("\n", pos)
        if newline < 0 and not final:
            self._state = self._AFTER
            return None
        end = len(text) if newline < 0 else newline
        self._broken(text[pos:end])
        return end

    def _reset(self) -> None:
        self._state = self._TOP


class CloudWatchRecords(RecordDecoder):
    """``--records cwl``: CloudWatch Logs subscription envelopes, one line per log event.

    Envelopes back to back with no delimiter (several in one gzip member, or one per
    member: decompression has already joined the members) are split like ``json`` values.
    A JSON value that is not an envelope passes through as it is, counted as unparsed.
    """

    def _consume(self, text: str, final: bool) -> int:
        pos = 0
        while True:
            pos = _skip(_SPACE, text, pos)
            if pos == len(text):
                return pos
            parsed = _parse(text, pos, final, by_line=True)
            if parsed is None:
                return pos
            events = _envelope_events(parsed.value) if parsed.ok else None
            if events is None:
                self._broken(text[pos : parsed.end])
            else:
                for event in events:
                    self._event(event)
            pos = parsed.end

    def _event(self, event: Any) -> None:
        line = _event_line(event)
        if line is None:
            self.unparsed += 1
            line = compact(event)
        self._line(line)


def _envelope_events(envelope: Any) -> list[Any] | None:
    """The log events of an envelope (none for a ``CONTROL_MESSAGE``), or None if it is no envelope."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("messageType"), str):
        return None
    if envelope["messageType"] == "CONTROL_MESSAGE":
        return []
    events = envelope.get("logEvents")
    return events if isinstance(events, list) else None


def _event_line(event: Any) -> bytes | None:
    """``ISO-timestamp message``, or None for an event without an integer timestamp and a message."""
    if not isinstance(event, dict):
        return None
    timestamp, message = event.get("timestamp"), event.get("message")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not isinstance(message, str):
        return None
    try:
        when = _EPOCH + timedelta(milliseconds=timestamp)
    except OverflowError:
        return None
    stamp = f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z"
    return _raw(f"{stamp} {message.rstrip(_LINE_END)}")


class PassThrough:
    """``--records none``, and what ``auto`` picks for text that is not JSON."""

    unparsed = 0

    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class AutoRecords:
    """``--records auto``: the first decoded bytes of the object choose the mode.

    A CloudTrail header chooses ``cloudtrail``; a first object naming a CloudWatch Logs
    ``messageType`` chooses ``cwl``; text whose first :data:`SNIFF_BYTES` parse as JSON (or
    as the start of a longer value) chooses ``json``; anything else, ``none``. Text that
    does not start with ``{`` or ``[`` is decided at its first byte and costs nothing more.
    """

    def __init__(self) -> None:
        self._head = b""
        self._inner: RecordDecoder | PassThrough | None = None
        self.mode: str | None = None

    @property
    def unparsed(self) -> int:
        return self._inner.unparsed if self._inner is not None else 0

    def decode(self, data: bytes) -> bytes:
        if self._inner is None:
            self._head += data
            mode = sniff(self._head, final=False)
            if mode is None:
                return b""
            data, self._head = self._head, b""
            self._choose(mode)
        assert self._inner is not None
        return self._inner.decode(data)

    def flush(self) -> bytes:
        if self._inner is None:
            head, self._head = self._head, b""
            self._choose(sniff(head, final=True) or NONE)
            assert self._inner is not None
            return self._inner.decode(head) + self._inner.flush()
        return self._inner.flush()

    def _choose(self, mode: str) -> None:
        self.mode = mode
        self._inner = _fixed_decoder(mode)


def sniff(head: bytes, final: bool) -> str | None:
    """The mode that an object's first decoded bytes call for; None while more bytes could decide."""
    text = head.lstrip(b" \t\r\n").decode("utf-8", "surrogateescape")
    if not text:
        return NONE if final else None
    if text[0] not in "{[":
        return NONE
    if len(head) < SNIFF_BYTES and not final:
        return None
    cut = len(text) > SNIFF_BYTES or not final
    text = text[:SNIFF_BYTES]
    if _HEADER.match(text):
        return CLOUDTRAIL
    if text[0] == "{" and _CWL_SNIFF.search(text):
        return CWL
    try:
        _DECODER.raw_decode(text)
    except json.JSONDecodeError as error:
        if cut and (error.msg.startswith("Unterminated string") or error.pos >= len(text) - _SLACK):
            return JSON
        return NONE
    except RecursionError:
        return NONE
    return JSON


def record_decoder(mode: str) -> RecordDecoder | PassThrough | AutoRecords:
    """A fresh decoder for one object in ``mode`` (one of :data:`MODES`)."""
    return AutoRecords() if mode == AUTO else _fixed_decoder(mode)


def _fixed_decoder(mode: str) -> RecordDecoder | PassThrough:
    decoders: dict[str, Callable[[], RecordDecoder | PassThrough]] = {
        NONE: PassThrough,
        JSON: JsonRecords,
        CWL: CloudWatchRecords,
        CLOUDTRAIL: CloudTrailRecords,
    }
    try:
        return decoders[mode]()
    except KeyError:
        raise ValueError(f"unknown records mode {mode!r}: expected one of {', '.join(MODES)}") from None


def cache_subdir(mode: str) -> str | None:
    """The disk cache's sub-directory for ``mode``: transformed content never mixes with stored text."""
    return None if mode == NONE else f"records-{mode}"
