"""CloudWatchHandler: PutLogEvents within its real limits, creating the group and stream as needed.

A call holds at most 10,000 events and 1,048,576 bytes, counted as each message's UTF-8 bytes
plus 26. A message longer than 1,048,550 bytes (so that one event fits a call) is split at
newlines, or at character boundaries, into events with the same timestamp. An empty message
(which the API refuses, failing the whole call) is rejected and counted.

Events in a call must be in chronological order and span at most 24 hours. A batch is sorted by
timestamp (a stable sort: records of one thread keep their order) and cut where the span would
exceed 24 h. Events the service refuses for their age (``rejectedLogEventsInfo``: too new, too
old, expired) are counted and reported; the rest of the call is accepted.

A ``ResourceNotFoundException`` (the group or stream does not exist yet, or was deleted while
the handler runs) creates both and sends the call again at once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

from ._batching import BatchingHandler, QueuedRecord, ms
from ._clients import error_code
from ._split import split_utf8

MAX_EVENTS = 10_000
MAX_CALL_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_MESSAGE_BYTES = MAX_CALL_BYTES - EVENT_OVERHEAD
MAX_SPAN_MS = 24 * 3600 * 1000


class CloudWatchHandler(BatchingHandler[list[QueuedRecord]]):
    """Ship log records to a CloudWatch Logs group and stream (README, "Shipping logs").

    ``log_stream`` defaults to ``<host>-<pid>`` (the child's pid after ``fork()``).
    ``create_log_group``: create the group and stream when missing (True).
    """

    service = "logs"
    default_batch_bytes = MAX_CALL_BYTES
    default_batch_records = MAX_EVENTS
    default_flush_interval = 5.0
    limit_batch_bytes = MAX_CALL_BYTES
    limit_batch_records = MAX_EVENTS

    def __init__(self, log_group: str, log_stream: str | None = None, *, create_log_group: bool = True,
                 **common: Any) -> None:
        self.log_group = log_group
        self._given_stream = log_stream
        self.log_stream = log_stream or _default_stream()
        self.create_log_group = create_log_group
        super().__init__(**common)

    def _after_fork(self) -> None:
        super()._after_fork()
        self.log_stream = self._given_stream or _default_stream()

    def _describe_endpoint(self) -> str:
        return f"{self.log_group}/{self.log_stream}"

    def _entries(self, text: str, record: Any) -> list[QueuedRecord]:
        timestamp = ms(record.created)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep them visible, as escapes
            data = text.encode("utf-8", "backslashreplace")
            text = data.decode("utf-8")
        if not data:
            self._count_drop(1, "rejected", "empty message rejected: PutLogEvents refuses empty events", "empty")
            return []
        if len(data) <= MAX_MESSAGE_BYTES:
            return [QueuedRecord(text, len(data) + EVENT_OVERHEAD, timestamp)]
        self._bump("split")
        return [QueuedRecord(piece.decode("utf-8"), len(piece) + EVENT_OVERHEAD, timestamp)
                for piece in split_utf8(data, MAX_MESSAGE_BYTES) if piece]

    def _calls(self, batch: list[QueuedRecord]) -> Iterator[list[QueuedRecord]]:
        """The batch in chronological order, cut where a call would span more than 24 h."""
        ordered = sorted(batch, key=lambda entry: entry.timestamp)
        start = 0
        for index in range(1, len(ordered)):
            if ordered[index].timestamp - ordered[start].timestamp > MAX_SPAN_MS:
                yield ordered[start:index]
                start = index
        yield ordered[start:]

    def _send(self, call: list[QueuedRecord]) -> None:
        events = [{"timestamp": entry.timestamp, "message": entry.payload} for entry in call]
        try:
            answer = self._put(events)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException" or not self.create_log_group:
                raise
            self._create_destination()
            answer = self._put(events)
        rejected = _rejected(answer.get("rejectedLogEventsInfo") or {}, len(call))
        self.counters.records_sent += len(call) - rejected
        self.counters.batches_sent += 1
        if rejected:
            self._count_drop(rejected, "rejected", "event(s) rejected by CloudWatch Logs (too old, too new "
                                                   f"or expired): {answer['rejectedLogEventsInfo']}")

    def _put(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return self._get_client().put_log_events(  # type: ignore[no-any-return]
            logGroupName=self.log_group, logStreamName=self.log_stream, logEvents=events
        )

    def _create_destination(self) -> None:
        client = self._get_client()
        for create, arguments in ((client.create_log_group, {"logGroupName": self.log_group}),
                                  (client.create_log_stream, {"logGroupName": self.log_group,
                                                              "logStreamName": self.log_stream})):
            try:
                create(**arguments)
            except Exception as exc:
                if error_code(exc) != "ResourceAlreadyExistsException":
                    raise

    def _give_up(self, call: list[QueuedRecord], reason: BaseException | str) -> None:
        self._count_drop(len(call), "dropped_undeliverable", f"event(s) not delivered: {reason!r}")


def _rejected(info: dict[str, int], count: int) -> int:
    """How many of ``count`` events ``rejectedLogEventsInfo`` refuses: a head of old ones, a tail of new ones."""
    old_end = max(info.get("tooOldLogEventEndIndex", -1), info.get("expiredLogEventEndIndex", -1))
    new_start = info.get("tooNewLogEventStartIndex", count)
    return min(count, (old_end + 1) + max(0, count - max(new_start, old_end + 1)))


def _default_stream() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
