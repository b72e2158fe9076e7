"""The batching core that S3Handler, FirehoseHandler and CloudWatchHandler share (README, "Shipping logs").

Data flow. ``emit()`` formats the record in the caller's thread and turns it into one or more
:class:`QueuedRecord` (the handler decides how: bytes ending in a newline for S3 and Firehose, a message
and a timestamp for CloudWatch Logs), then appends them to a bounded queue and returns. One
sender thread, started on the first record, takes a batch off the queue when the queue holds a
full batch (max bytes or max records), when its oldest entry is ``flush_interval`` old (a timed
wait, so a quiet application still delivers), or when ``flush()`` or ``close()`` asks. It hands
the batch to the handler, which cuts it into API calls; each call is retried with exponential
backoff and jitter on throttling, 5xx and connection errors, keeping its records, and only the
records a call reports as failed are sent again.

Why the pieces are the way they are:

* **Ordinals.** Every entry gets the next ordinal as it is queued, and the sender counts the
  entries it has finished with, in the same order. ``flush()`` waits until that count reaches
  the last ordinal queued before it: exactly "everything queued before it".
* **The guard.** Records emitted from any handler's sender thread are ignored (botocore and
  urllib3 logging the handler's own requests would loop, or ping-pong between two handlers),
  and so are records emitted while the same thread is already inside ``emit()`` (a filter or a
  formatter that logs). ``handle()`` is overridden so that the guard runs before any lock, and
  ``emit()`` takes no handler lock at all: a sender thread that blocks on the handler lock while
  an application thread holding it waits for queue space is the classic deadlock.
* **Overflow.** A full queue makes ``emit()`` wait up to ``block_timeout`` once; if the queue is
  still full the record is dropped, counted and reported on stderr, and later records are
  dropped at once (no wait) until the queue has room again, so an unreachable endpoint costs
  the application one wait, not one per record.
* **fork().** The child gets a fresh queue, lock, sender thread and client; what the parent had
  queued stays the parent's to deliver, so nothing is sent twice.
* **Exit.** The sender is a daemon thread, so the interpreter does not wait for it before
  running atexit; ``logging.shutdown`` (registered by ``logging`` itself) then calls ``flush()``
  and ``close()``, which deliver. At exit an unbounded ``flush()`` is bounded by
  ``close_timeout``, so an unreachable endpoint cannot hang the process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from ._clients import ClientSpec, clone_client, is_retryable

log = logging.getLogger("s3logfs.handlers")

CallT = TypeVar("CallT")

REPORT_EVERY = 10.0
"""Seconds between two stderr reports of the same kind (drops, spills, rejections)."""

_local = threading.local()
_handlers: weakref.WeakSet[BatchingHandler[Any]] = weakref.WeakSet()
_process_hooks = {"installed": False, "exiting": False}


def guard_active() -> bool:
    """True in a sender thread, and inside an ``emit()`` of this thread: records here are ignored."""
    return getattr(_local, "sender", False) or getattr(_local, "emitting", False)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Treat this thread as a sender for a while: botocore's records while the handler makes its
    client (in the application's thread) are the handler's own, not the application's."""
    previous = getattr(_local, "sender", False)
    _local.sender = True
    try:
        yield
    finally:
        _local.sender = previous


def _install_process_hooks() -> None:
    """Once per process, when the first handler is made (never at import)."""
    if _process_hooks["installed"]:
        return
    _process_hooks["installed"] = True
    os.register_at_fork(after_in_child=_after_fork_in_child)
    atexit.register(_mark_exiting)  # runs before logging.shutdown: atexit is last in, first out


def _mark_exiting() -> None:
    _process_hooks["exiting"] = True


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._after_fork()


@dataclass
class HandlerCounters:
    """What a handler did with the records it was given; every loss is in one of these fields."""

    records_sent: int = 0
    """Entries (lines, Firehose records, log events) the service accepted."""
    batches_sent: int = 0
    """Successful API calls (objects written, PutRecordBatch, PutLogEvents)."""
    retries: int = 0
    dropped_overflow: int = 0
    """Records dropped because the queue stayed full (reported on stderr)."""
    dropped_undeliverable: int = 0
    """Entries given up: a non-retryable error, or still undelivered when close() timed out."""
    rejected: int = 0
    """Entries refused: by the service (rejectedLogEventsInfo), or too large to split."""
    split: int = 0
    """Records too large for one API record or event, sent as several."""
    spilled: int = 0
    """Batches written to the spill directory (S3Handler)."""
    spill_delivered: int = 0
    """Spilled batches delivered later, by this process or another."""

    @property
    def dropped(self) -> int:
        return self.dropped_overflow + self.dropped_undeliverable + self.rejected

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


class QueuedRecord:
    """One unit of delivery: a line, a Firehose record or a log event."""

    __slots__ = ("payload", "size", "timestamp", "queued_at")

    def __init__(self, payload: Any, size: int, timestamp: int) -> None:
        self.payload = payload
        self.size = size
        self.timestamp = timestamp
        """Milliseconds since the epoch: the record's ``created``."""
        self.queued_at = 0.0


class BatchingHandler(logging.Handler, Generic[CallT]):
    """A ``logging.Handler`` that queues records and ships them in batches from one sender thread.

    Subclasses define the service (``service``), their batch defaults and the API's hard limits
    (``default_*`` and ``limit_*`` class attributes: a larger ``max_batch_*`` is lowered to the
    limit), how a formatted record becomes entries (``_entries``), how a batch becomes API calls
    (``_calls``), how one call is sent (``_send``) and what giving up on a call means
    (``_give_up``).
    """

    service = ""
    default_batch_bytes = 1 << 20
    default_batch_records = 10_000
    default_flush_interval = 5.0
    limit_batch_bytes: int | None = None
    limit_batch_records: int | None = None

    def __init__(self, *, endpoint_url: str | None = None, region_name: str | None = None,
                 profile_name: str | None = None, client: Any = None, max_batch_bytes: int | None = None,
                 max_batch_records: int | None = None, flush_interval: float | None = None,
                 queue_size: int = 100_000, block_timeout: float = 1.0, close_timeout: float = 30.0,
                 max_backoff: float = 30.0, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.max_batch_bytes = self._within(max_batch_bytes or self.default_batch_bytes, self.limit_batch_bytes)
        self.max_batch_records = self._within(max_batch_records or self.default_batch_records,
                                              self.limit_batch_records)
        self.flush_interval = self.default_flush_interval if flush_interval is None else float(flush_interval)
        if queue_size < 1 or self.flush_interval <= 0:
            raise ValueError("queue_size must be at least 1 and flush_interval above 0")
        self.queue_size = queue_size
        self.block_timeout = block_timeout
        self.close_timeout = close_timeout
        self.max_backoff = max_backoff
        self._client_spec = ClientSpec(self.service, endpoint_url, region_name, profile_name)
        self._given_client = client
        self._closed = False
        self._reset()
        self._client = self._new_client()
        _install_process_hooks()
        _handlers.add(self)

    @staticmethod
    def _within(value: int, limit: int | None) -> int:
        if value < 1:
            raise ValueError("batch limits must be at least 1")
        return min(value, limit) if limit else value

    def _reset(self) -> None:
        """Fresh delivery state: at construction, and in a child after ``fork()``."""
        self.counters = HandlerCounters()
        self._lock = threading.Lock()
        self._wake_sender = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._items: deque[QueuedRecord] = deque()
        self._queued_bytes = 0
        self._queued = 0
        self._done = 0
        self._flush_target = 0
        self._overflowing = False
        self._closing = False
        self._close_deadline = float("inf")
        self._exit_deadline: float | None = None
        self._interrupt = threading.Event()
        self._thread: threading.Thread | None = None
        self._sender_failed = False
        self._client = None
        self._last_report: dict[str, float] = {}
        self._unreported: dict[str, int] = {}

    def _after_fork(self) -> None:
        given = self._given_client
        self._reset()
        try:
            if given is not None and not callable(given):
                with guarded():
                    self._given_client = clone_client(given)
            self._client = self._new_client()
        except Exception as exc:  # noqa: BLE001 - the sender tries again on its first send
            self._report("client", f"cannot make the {self.service} client after fork(): {exc!r}")

    # ------------------------------------------------------------------ the application's side

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Filter and emit, without the handler lock, and never from a sender thread."""
        if guard_active():
            return False
        result = self.filter(record)
        if result:
            self.emit(result if isinstance(result, logging.LogRecord) else record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        _local.emitting = True
        try:
            self._enqueue(self._entries(self.format(record), record))
        except Exception:  # noqa: BLE001 - logging's own contract: handleError reports it
            self.handleError(record)
        finally:
            _local.emitting = False

    def _entries(self, text: str, record: logging.LogRecord) -> list[QueuedRecord]:
        raise NotImplementedError

    def _enqueue(self, entries: Iterable[QueuedRecord]) -> None:
        if self._closed:
            self._count_drop(len(list(entries)), "dropped_overflow", "record(s) logged after close()")
            return
        self._ensure_sender()
        dropped = 0
        with self._lock:
            for entry in entries:
                if not self._wait_for_room():
                    dropped += 1
                    continue
                entry.queued_at = time.monotonic()
                self._items.append(entry)
                self._queued += 1
                self._queued_bytes += entry.size
                if len(self._items) == 1 or self._full_batch_queued():
                    self._wake_sender.notify()
        if dropped:
            self._count_drop(dropped, "dropped_overflow",
                             f"record(s) dropped: the queue of {self.queue_size} stayed full "
                             f"for {self.block_timeout:g}s ({self._describe_endpoint()} is slow or unreachable)")

    def _wait_for_room(self) -> bool:
        """With the lock held: wait once, up to ``block_timeout``, for the queue to have room."""
        if len(self._items) < self.queue_size:
            self._overflowing = False
            return True
        if self._overflowing:
            return False
        deadline = time.monotonic() + self.block_timeout
        while len(self._items) >= self.queue_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                self._overflowing = True
                return False
            self._room.wait(remaining)
        return True

    def _full_batch_queued(self) -> bool:
        return (len(self._items) >= min(self.max_batch_records, self.queue_size)
                or self._queued_bytes >= self.max_batch_bytes)

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Block until every record queued before this call is delivered (or given up and counted).

        Returns False if ``timeout`` passed first, or when called where it cannot wait (from a
        sender thread). At interpreter exit, no timeout means ``close_timeout``.
        """
        if getattr(_local, "sender", False):
            return False
        if timeout is None and _process_hooks["exiting"]:
            timeout = self._exit_time_left()
        with self._lock:
            target = self._queued
            if self._done >= target:
                return True
            self._flush_target = max(self._flush_target, target)
            self._wake_sender.notify()
        if self._thread is None:
            self._run_inline()
        with self._lock:
            return self._progress.wait_for(lambda: self._done >= target or self._sender_failed, timeout) \
                and self._done >= target

    def close(self, timeout: float | None = None) -> None:  # type: ignore[override]
        """Deliver everything queued, waiting up to ``timeout`` (default ``close_timeout``), then close.

        Whatever is still undelivered then is handed to ``_abandon`` (spilled by S3Handler,
        counted and reported by the others).
        """
        if self._closed:
            super().close()
            return
        wait = timeout if timeout is not None else (
            self._exit_time_left() if _process_hooks["exiting"] else self.close_timeout)
        with self._lock:
            self._closed = self._closing = True
            self._close_deadline = time.monotonic() + wait
            self._wake_sender.notify_all()
            self._room.notify_all()
        self._interrupt.set()
        thread = self._thread
        if thread is None:
            self._run_inline()
        elif thread is not threading.current_thread():
            thread.join(wait + 1.0)
        self._abandon_leftovers()
        self._report_totals()
        super().close()

    def _exit_time_left(self) -> float:
        """At exit, logging.shutdown calls flush() then close(): together they get ``close_timeout``."""
        if self._exit_deadline is None:
            self._exit_deadline = time.monotonic() + self.close_timeout
        return max(0.0, self._exit_deadline - time.monotonic())

    def _abandon_leftovers(self) -> None:
        with self._lock:
            left = list(self._items)
            self._items.clear()
            in_flight = self._queued - self._done - len(left)
            self._done += len(left)
            self._progress.notify_all()
        if left:
            self._abandon(left)
        if in_flight > 0:
            self._report("close", f"{in_flight} record(s) still in flight when close() timed out")

    def _abandon(self, entries: list[QueuedRecord]) -> None:
        self._count_drop(len(entries), "dropped_undeliverable",
                         f"record(s) not delivered within close()'s {self.close_timeout:g}s")

    # ------------------------------------------------------------------ the sender thread

    def _ensure_sender(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=f"s3logfs-{type(self).__name__}", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: close() delivers inline
                return
            self._thread = thread

    def _run_inline(self) -> None:
        """Deliver what is queued from the calling thread: only when no sender thread could start."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.current_thread()
        _local.sender = True
        try:
            while True:
                with self._lock:
                    batch = self._take() if self._items else []
                if not batch:
                    return
                self._deliver_and_count(batch)
        finally:
            _local.sender = False
            with self._lock:
                self._thread = None

    def _run(self) -> None:
        _local.sender = True
        try:
            self._loop()
        except BaseException as exc:
            self._report("failed", f"sender thread stopped: {exc!r}")
            with self._lock:
                self._sender_failed = True
                self._progress.notify_all()
            raise
        finally:
            _local.sender = False

    def _loop(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._deliver_and_count(batch)
            elif not stop:
                self._on_idle()
            if stop:
                if time.monotonic() < self._close_deadline:
                    self._on_idle()
                return

    def _next_batch(self) -> tuple[list[QueuedRecord], bool]:
        """Wait until a batch is due and take it; ``([], True)`` once closing and drained."""
        with self._lock:
            while not self._batch_due(time.monotonic()):
                if self._closing:
                    return [], True
                idle = self._idle_timeout()
                if idle is not None and idle <= 0:
                    return [], False
                self._wake_sender.wait(self._wait_timeout(idle))
            return self._take(), False

    def _batch_due(self, now: float) -> bool:
        if not self._items:
            return False
        return (self._closing or self._flush_target > self._done or self._full_batch_queued()
                or now >= self._items[0].queued_at + self.flush_interval)

    def _wait_timeout(self, idle: float | None) -> float | None:
        if not self._items:
            return idle
        age = max(0.0, self._items[0].queued_at + self.flush_interval - time.monotonic())
        return age if idle is None else min(age, idle)

    def _take(self) -> list[QueuedRecord]:
        batch: list[QueuedRecord] = []
        size = 0
        while self._items and len(batch) < self.max_batch_records:
            entry = self._items[0]
            if batch and size + entry.size > self.max_batch_bytes:
                break
            self._items.popleft()
            batch.append(entry)
            size += entry.size
        self._queued_bytes -= size
        self._room.notify_all()
        return batch

    def _deliver_and_count(self, batch: list[QueuedRecord]) -> None:
        for call in self._calls(batch):
            self._deliver_call(call)
        with self._lock:
            self._done += len(batch)
            self._progress.notify_all()

    def _deliver_call(self, call: CallT) -> None:
        attempt = 0
        current = call
        while True:
            try:
                pending = self._send(current)
                if pending is None:
                    return
                current = pending
                reason: BaseException | str = "some records failed"
            except Exception as exc:  # noqa: BLE001 - is_retryable decides, whatever the client raised
                if not is_retryable(exc):
                    self._give_up(current, exc)
                    return
                reason = exc
            attempt += 1
            self.counters.retries += 1
            if not self._backoff(attempt, current, reason):
                return

    def _backoff(self, attempt: int, pending: CallT, reason: BaseException | str) -> bool:
        """Sleep before the next attempt; False (after giving the call up) when no attempt is left."""
        if self._stop_retrying(attempt) or time.monotonic() >= self._close_deadline:
            self._give_up(pending, reason)
            return False
        ceiling = min(self.max_backoff, 0.1 * 2 ** min(attempt, 20))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        log.debug("retry %d in %.2fs after %r", attempt, delay, reason)
        if self._interrupt.wait(delay):
            time.sleep(max(0.0, min(delay, self._close_deadline - time.monotonic())))
        return True

    def _stop_retrying(self, attempt: int) -> bool:
        """Whether to give up a call after ``attempt`` failures; by default only the close deadline does."""
        return False

    def _new_client(self) -> Any:
        """Made when the handler is (and in a child after fork), not at the first send: that may
        come at interpreter exit, when importing boto3's modules fails ("can't register atexit
        after shutdown")."""
        given = self._given_client
        with guarded():
            if given is None:
                return self._client_spec.make()
            return given() if callable(given) else given

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    # ------------------------------------------------------------------ what each handler defines

    def _calls(self, batch: list[QueuedRecord]) -> Iterable[CallT]:
        raise NotImplementedError

    def _send(self, call: CallT) -> CallT | None:
        """Send one call; return what must be sent again (partial failure) or None."""
        raise NotImplementedError

    def _give_up(self, call: CallT, reason: BaseException | str) -> None:
        raise NotImplementedError

    def _idle_timeout(self) -> float | None:
        """Seconds until ``_on_idle`` has work while no batch is due; None: none."""
        return None

    def _on_idle(self) -> None:
        """Background work between batches (S3Handler retries its spill directory)."""

    def _describe_endpoint(self) -> str:
        return self.service

    # ------------------------------------------------------------------ reporting

    def _bump(self, counter: str, count: int = 1) -> None:
        """Add to a counter that application threads update too."""
        with self._lock:
            setattr(self.counters, counter, getattr(self.counters, counter) + count)

    def _count_drop(self, count: int, counter: str, text: str, kind: str = "") -> None:
        self._bump(counter, count)
        self._report(kind or counter, f"{count} {text}", count)

    def _report(self, kind: str, text: str, count: int = 0) -> None:
        """A warning on stderr, at most one per kind every ``REPORT_EVERY`` seconds; the rest is summed.

        Written straight to stderr, not through ``logging``: the handler may be the only one on
        the root logger, and a report must never depend on the path that is failing.
        """
        now = time.monotonic()
        with self._lock:
            last = self._last_report.get(kind)
            if last is not None and now - last < REPORT_EVERY:
                self._unreported[kind] = self._unreported.get(kind, 0) + count
                return
            self._last_report[kind] = now
            earlier = self._unreported.pop(kind, 0)
        if earlier:
            text += f" (and {earlier} more since the last report)"
        _write_stderr(f"s3logfs.handlers: {type(self).__name__}({self._describe_endpoint()}): {text}")

    def _report_totals(self) -> None:
        counters = self.counters
        if counters.dropped or counters.spilled or self._unreported:
            _write_stderr(f"s3logfs.handlers: {type(self).__name__}({self._describe_endpoint()}) closed: "
                          + ", ".join(f"{name} {value}" for name, value in counters.as_dict().items() if value))


def _write_stderr(text: str) -> None:
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def ms(seconds: float) -> int:
    return int(seconds * 1000)
