"""S3Handler: each batch becomes one gzip object that ``s3logfs mount`` reads as it is.

Keys are ``PREFIX/YYYY/MM/DD/HH/<host>-<pid>-<utc time>-<seq>-<token>.log.gz``. The time is the
upload's (kept from going backwards within a process) and ``seq`` counts this handler's
objects, so one process's keys sort in delivery order, which is the order a mount mounted later
streams them in. The token is 8 random hex digits drawn per handler and again after ``fork()``:
two hosts with one name, a restart that gets the same pid in the same millisecond, or a forked
child cannot collide. A retry of the same batch reuses its key, so an upload that reached S3 but
whose answer was lost is overwritten, not duplicated.

A body over the multipart threshold (5 MiB, S3's smallest part) goes up as a multipart upload,
created only for such bodies and aborted on any failure: S3 shows the object only on
CompleteMultipartUpload, so no partial object is ever visible.

With a ``spill_dir``, a batch that still fails after ``spill_after`` attempts is written there
(its key and gzip body, atomically) and the sender moves on. Spilled batches are retried between
batches with a backoff, after any successful upload, and by any later handler with the same
``spill_dir``, in this process or another: a handler that finds spill files when it is made
starts its sender to deliver them. ``flock`` on each file keeps two processes from sending the
same one.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._batching import BatchingHandler, QueuedRecord, ms
from ._clients import is_retryable

MIN_PART = 5 * 1024 * 1024
"""S3's smallest multipart part (but the last); also the threshold for going multipart."""
MAX_PARTS = 10_000
SPILL_MAGIC = b"s3logfs-spill 1"
SPILL_BACKOFF_MAX = 60.0


@dataclass(frozen=True)
class PendingObject:
    """One batch as an S3 object: what is uploaded, retried or spilled."""

    key: str
    body: bytes
    records: int


def part_size_for(total: int, minimum: int = MIN_PART) -> int:
    """The part size that keeps ``total`` bytes within S3's 10,000 parts."""
    return max(minimum, -(-total // MAX_PARTS))


def upload(client: Any, bucket: str, key: str, body: bytes, threshold: int = MIN_PART) -> int:
    """Put ``body`` at ``key``: one PUT up to ``threshold`` bytes, else a multipart upload.

    Returns the number of parts (0 for a plain PUT). A failed multipart upload is aborted
    before the error is raised again, so nothing partial stays behind.
    """
    if len(body) <= threshold:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/gzip")
        return 0
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/gzip")["UploadId"]
    try:
        size = part_size_for(len(body), threshold)
        parts = []
        for number, start in enumerate(range(0, len(body), size), 1):
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                        Body=body[start:start + size])
            parts.append({"ETag": answer["ETag"], "PartNumber": number})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
        return len(parts)
    except BaseException:
        _abort_quietly(client, bucket, key, upload_id)
        raise


def _abort_quietly(client: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception:  # noqa: BLE001, S110 - the upload is invisible either way; a lifecycle rule reclaims its parts
        pass


class S3Handler(BatchingHandler[PendingObject]):
    """Ship log records to ``s3://bucket/prefix`` as gzip objects (README, "Shipping logs").

    ``spill_dir``: where batches that cannot be delivered wait (created 0700); None keeps
    retrying in memory. ``spill_after``: failed attempts before a batch spills.
    ``multipart_threshold``: bodies above it (at least 5 MiB) use a multipart upload.
    """

    service = "s3"
    default_batch_bytes = 64 * 1024 * 1024
    default_batch_records = 1_000_000
    default_flush_interval = 60.0

    def __init__(self, bucket: str, prefix: str = "", *, spill_dir: str | os.PathLike[str] | None = None,
                 spill_after: int = 4, multipart_threshold: int = MIN_PART, compresslevel: int = 6,
                 **common: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.spill_after = max(1, spill_after)
        self.multipart_threshold = max(MIN_PART, multipart_threshold)
        self.compresslevel = compresslevel
        self.host = re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"
        if self.spill_dir is not None:
            self.spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(**common)
        if self._spill_pending:
            self._ensure_sender()

    def _reset(self) -> None:
        super()._reset()
        self._seq = 0
        self._token = os.urandom(4).hex()
        self._last_time = 0.0
        self._spill_pending = self.spill_dir is not None and any(self.spill_dir.glob("*.spill"))
        self._next_spill_try = 0.0
        self._spill_backoff = 1.0

    def _describe_endpoint(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _entries(self, text: str, record: Any) -> list[QueuedRecord]:
        data = (text + "\n").encode("utf-8", "backslashreplace")
        return [QueuedRecord(data, len(data), ms(record.created))]

    # ------------------------------------------------------------------ delivery

    def _calls(self, batch: list[QueuedRecord]) -> list[PendingObject]:
        body = gzip.compress(b"".join(entry.payload for entry in batch), self.compresslevel, mtime=0)
        return [PendingObject(self._next_key(), body, len(batch))]

    def _next_key(self) -> str:
        now = max(time.time(), self._last_time)
        self._last_time = now
        self._seq += 1
        moment = datetime.fromtimestamp(now, timezone.utc)
        stamp = f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z"
        return f"{self.prefix}{moment:%Y/%m/%d/%H}/{self.host}-{os.getpid()}-{stamp}-{self._seq:06d}-{self._token}.log.gz"

    def _send(self, call: PendingObject) -> None:
        upload(self._get_client(), self.bucket, call.key, call.body, self.multipart_threshold)
        self.counters.records_sent += call.records
        self.counters.batches_sent += 1
        if self._spill_pending:
            self._next_spill_try = 0.0  # S3 answers again: deliver the spilled batches next

    def _stop_retrying(self, attempt: int) -> bool:
        return self.spill_dir is not None and attempt >= self.spill_after

    def _give_up(self, call: PendingObject, reason: BaseException | str) -> None:
        if self.spill_dir is not None and self._spill(call, reason):
            return
        self._count_drop(call.records, "dropped_undeliverable", f"record(s) not delivered to {call.key}: {reason!r}")

    def _abandon(self, entries: list[QueuedRecord]) -> None:
        if self.spill_dir is None:
            super()._abandon(entries)
            return
        for call in self._calls(entries):
            self._give_up(call, f"still queued when close() timed out after {self.close_timeout:g}s")

    # ------------------------------------------------------------------ the spill directory

    def _spill(self, call: PendingObject, reason: BaseException | str) -> bool:
        assert self.spill_dir is not None
        name = f"{time.time_ns()}-{self.host}-{os.getpid()}-{self._token}-{self._seq:06d}"
        final = self.spill_dir / f"{name}.spill"
        temporary = self.spill_dir / f".{name}.tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(b"%s %d\n%s\n" % (SPILL_MAGIC, call.records, call.key.encode()))
                handle.write(call.body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except OSError as exc:
            self._report("spill-failed", f"cannot spill to {self.spill_dir}: {exc}")
            return False
        self.counters.spilled += 1
        self._spill_pending = True
        self._next_spill_try = time.monotonic() + self._spill_backoff
        self._report("spilled", f"a batch of {call.records} record(s) was spilled to {self.spill_dir} "
                                f"after {reason!r}; it will be retried", call.records)
        return True

    def _idle_timeout(self) -> float | None:
        if not self._spill_pending:
            return None
        return max(0.0, self._next_spill_try - time.monotonic())

    def _on_idle(self) -> None:
        if not self._spill_pending or time.monotonic() < self._next_spill_try:
            return
        assert self.spill_dir is not None
        for path in sorted(self.spill_dir.glob("*.spill")):
            if not self._deliver_spilled(path):
                self._spill_backoff = min(SPILL_BACKOFF_MAX, self._spill_backoff * 2)
                self._next_spill_try = time.monotonic() + self._spill_backoff
                return
        self._spill_backoff = 1.0
        self._spill_pending = any(self.spill_dir.glob("*.spill"))  # some may be another process's
        self._next_spill_try = time.monotonic() + self.flush_interval

    def _deliver_spilled(self, path: Path) -> bool:
        """Upload one spill file and remove it; False if S3 still fails (the file stays)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below; only the open may miss
        except FileNotFoundError:
            return True
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # another process is sending it
            if os.fstat(handle.fileno()).st_nlink == 0:
                return True  # sent and removed by another process after we opened it
            parsed = _parse_spill(handle.read())
            if parsed is None:
                path.rename(path.with_suffix(".bad"))
                self._report("spill-bad", f"{path} is not a spill file; renamed to .bad")
                return True
            records, key, body = parsed
            try:
                upload(self._get_client(), self.bucket, key, body, self.multipart_threshold)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the spill file for the next try
                if not is_retryable(exc):
                    self._report("spill-retry", f"spilled {path.name} not delivered yet: {exc!r}")
                return False
            path.unlink()
        self.counters.spill_delivered += 1
        self.counters.records_sent += records
        self.counters.batches_sent += 1
        return True


def _parse_spill(data: bytes) -> tuple[int, str, bytes] | None:
    header, _, rest = data.partition(b"\n")
    key, _, body = rest.partition(b"\n")
    magic, _, records = header.rpartition(b" ")
    if magic != SPILL_MAGIC or not records.isdigit() or not key:
        return None
    return int(records), key.decode(), body
