"""FirehoseHandler: PutRecordBatch within its real limits, resending only the records that failed.

A record is the formatted log record plus ``terminator`` (``"\\n"`` by default, so that the
objects Firehose writes are newline-delimited and ``s3logfs mount`` streams them as lines; with
``terminator=""`` they are concatenated JSON, which ``--records json`` splits). A call holds at
most 500 records and 4 MiB, and a record at most 1,000 KiB (1,024,000 bytes, before base64).
A larger record is split at newlines, or at character boundaries when a line alone is too long,
each piece ending with the terminator; with ``oversize="reject"``, or without a terminator to
end the pieces with, it is rejected instead, counted and reported.

PutRecordBatch can succeed with ``FailedPutCount > 0``: ``RequestResponses[i]`` answers record
``i``, and only the records whose answer holds an ``ErrorCode`` are sent again, after a backoff.
"""

from __future__ import annotations

from typing import Any

from ._batching import BatchingHandler, QueuedRecord, ms
from ._split import split_utf8

MAX_RECORDS = 500
MAX_CALL_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1_000 * 1024


class FirehoseHandler(BatchingHandler[list[QueuedRecord]]):
    """Ship log records to a Kinesis Data Firehose delivery stream (README, "Shipping logs")."""

    service = "firehose"
    default_batch_bytes = MAX_CALL_BYTES
    default_batch_records = MAX_RECORDS
    default_flush_interval = 1.0
    limit_batch_bytes = MAX_CALL_BYTES
    limit_batch_records = MAX_RECORDS

    def __init__(self, delivery_stream_name: str, *, terminator: str = "\n", oversize: str = "split",
                 **common: Any) -> None:
        if oversize not in ("split", "reject"):
            raise ValueError("oversize must be 'split' or 'reject'")
        self.delivery_stream_name = delivery_stream_name
        self.terminator = terminator.encode()
        self.oversize = oversize
        super().__init__(**common)

    def _describe_endpoint(self) -> str:
        return self.delivery_stream_name

    def _entries(self, text: str, record: Any) -> list[QueuedRecord]:
        data = text.encode("utf-8", "backslashreplace") + self.terminator
        timestamp = ms(record.created)
        if len(data) <= MAX_RECORD_BYTES:
            return [QueuedRecord(data, len(data), timestamp)]
        if self.oversize == "reject" or not self.terminator:
            self._count_drop(1, "rejected", f"record of {len(data)} bytes rejected: over Firehose's "
                                            f"{MAX_RECORD_BYTES} bytes per record")
            return []
        pieces = split_utf8(data[:-len(self.terminator)], MAX_RECORD_BYTES - len(self.terminator))
        self._bump("split")
        return [QueuedRecord(piece + self.terminator, len(piece) + len(self.terminator), timestamp) for piece in pieces]

    def _calls(self, batch: list[QueuedRecord]) -> list[list[QueuedRecord]]:
        return [batch]

    def _send(self, call: list[QueuedRecord]) -> list[QueuedRecord] | None:
        answer = self._get_client().put_record_batch(
            DeliveryStreamName=self.delivery_stream_name, Records=[{"Data": entry.payload} for entry in call]
        )
        if not answer.get("FailedPutCount"):
            self._sent(len(call))
            return None
        responses = answer.get("RequestResponses", [])
        failed = [entry for entry, response in zip(call, responses) if response.get("ErrorCode")]
        failed.extend(call[len(responses):])  # a short answer: resend what it does not vouch for
        self._sent(len(call) - len(failed))
        return failed

    def _sent(self, records: int) -> None:
        self.counters.records_sent += records
        self.counters.batches_sent += 1

    def _give_up(self, call: list[QueuedRecord], reason: BaseException | str) -> None:
        self._count_drop(len(call), "dropped_undeliverable", f"record(s) not delivered: {reason!r}")
