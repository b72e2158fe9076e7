"""A local S3 server for the demo, the tests and the benchmark: moto behind a small middleware.

The middleware counts requests and response bytes per kind (LIST, GET, HEAD...), tracks
the most requests in flight at once, can add a fixed latency per request (real S3 from
EC2 answers in 20-50 ms), and can inject faults (5xx answers, bodies cut short) so that
the retry paths are exercised against a real HTTP server. Behind it,
:class:`SortedListing` answers the buckets seeded into it (a million keys in seconds)
from a sorted index, for the tests and the benchmark at scale. Needs the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import gzip
import hashlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, quote, unquote
from xml.sax.saxutils import escape as xml_escape

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_NEWLINE_STANDIN = "\ue00a"
"""moto cannot route a key holding a newline (real S3 can), so the middleware swaps the
newline for this private-use character on the way in and back on the way out."""
_STANDIN_WSGI = _NEWLINE_STANDIN.encode().decode("latin-1")
_STANDIN_URL = "%EE%80%8A"
CONTROL_PATH = "/_localserver/"
"""Not an S3 path (bucket names cannot start with '_'): the control endpoints live here."""
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    kind: str  # "list", "get", "head", "put", "other"
    bucket: str
    key: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class Fault:
    """Make the next ``count`` matching requests fail: ``status`` 5xx, a body cut after
    ``truncate_at``, or a stall of ``stall`` seconds."""

    count: int
    kind: str = "get"
    status: int | None = 500
    truncate_at: int | None = None
    key_contains: str = ""
    skip: int = 0
    """Matching requests to let through before the fault starts."""
    stall: float = 0.0
    """Seconds to hold the request, accepted and unanswered, before serving it (a stalled server;
    :meth:`CountingMiddleware.release_stalls` ends every stall at once). Give ``status=None``."""
    every: int = 0
    """Fault only one matching request in ``every`` (20 fails 5%); 0 faults each one."""
    seen: int = 0


@dataclass
class Counters:
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def of_kind(self, kind: str) -> list[Request]:
        return [request for request in self.requests if request.kind == kind]


def _classify(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str, str]:
    bucket, _, key = unquote(path.lstrip("/")).partition("/")
    if method == "GET" and key:
        return "get", bucket, key
    if method == "GET" and bucket and not key and not ({"location", "versioning", "acl", "policy"} & set(query)):
        return "list", bucket, key
    return {"HEAD": "head", "PUT": "put", "POST": "post", "DELETE": "delete"}.get(method, "other"), bucket, key


class CountingMiddleware:
    """WSGI middleware: latency, counters and faults in front of an S3 app."""

    def __init__(self, app: WSGIApp, latency_ms: float = 0.0) -> None:
        self.app = app
        self.latency = latency_ms / 1000.0
        self.counters = Counters()
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stalls = threading.Event()

    def reset(self) -> None:
        with self._lock:
            self.counters = Counters()

    def release_stalls(self) -> None:
        """End every stall in progress; later stalls hold again."""
        with self._lock:
            released, self._stalls = self._stalls, threading.Event()
        released.set()

    def _take_fault(self, kind: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.kind == kind and fault.key_contains in key:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.seen += 1
                    if fault.every and fault.seen % fault.every:
                        return None
                    fault.count -= 1
                    return fault
        return None

    def summary(self) -> dict[str, Any]:
        """Request counts and bytes per kind, and the most requests seen in flight at once."""
        with self._lock:
            requests = list(self.counters.requests)
            max_in_flight = self.counters.max_in_flight
        kinds: dict[str, dict[str, int]] = {}
        for request in requests:
            totals = kinds.setdefault(request.kind, {"requests": 0, "bytes": 0})
            totals["requests"] += 1
            totals["bytes"] += request.body_bytes
        return {"kinds": kinds, "max_in_flight": max_in_flight, "latency_ms": self.latency * 1000.0}

    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """``/_localserver/{stats,reset,latency?ms=N,seed?bucket=B}``: how a benchmark in another process drives us."""
        action = environ.get("PATH_INFO", "")[len(CONTROL_PATH):]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if action == "seed" and isinstance(self.app, SortedListing):
            body = json.dumps(self.app.seed_request(environ)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if action == "reset":
            self.reset()
        elif action == "latency":
            self.latency = float(query.get("ms", ["0"])[0]) / 1000.0
        elif action != "stats":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown control action\n"]
        body = json.dumps(self.summary()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PATH):
            return self._control(environ, start_response)
        method = environ["REQUEST_METHOD"]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        kind, bucket, key = _classify(method, environ.get("PATH_INFO", ""), query)
        with self._lock:
            self.counters.in_flight += 1
            self.counters.max_in_flight = max(self.counters.max_in_flight, self.counters.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            fault = self._take_fault(kind, key)
            if fault is not None and fault.stall:
                with self._lock:
                    stalls = self._stalls
                stalls.wait(fault.stall)
            if fault is not None and fault.status is not None:
                return self._fail(fault.status, method, kind, bucket, key, environ, start_response)
            started: list[Any] = []
            _hide_newlines(environ)
            original = b"".join(self.app(environ, lambda *args: started.append(args)))
            body = original if kind == "get" else _restore_newlines(original)  # an object's bytes stay as stored
            status, headers = started[0][0], started[0][1]
            if len(body) != len(original):
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
            if fault is not None and fault.truncate_at is not None:
                body = body[: fault.truncate_at]  # the full length is announced: a broken body
            start_response(status, headers)
            self._record(method, kind, bucket, key, environ, int(status.split()[0]), len(body))
            return [body]
        finally:
            with self._lock:
                self.counters.in_flight -= 1

    def _fail(self, status: int, method: str, kind: str, bucket: str, key: str, environ: dict[str, Any],
              start_response: StartResponse) -> Iterable[bytes]:
        body = b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>"
        start_response(f"{status} Injected", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        self._record(method, kind, bucket, key, environ, status, 0)
        return [body]

    def _record(self, method: str, kind: str, bucket: str, key: str, environ: dict[str, Any], status: int,
                size: int) -> None:
        request = Request(method, kind, bucket, key, environ.get("HTTP_RANGE"), status, size if kind == "get" else 0)
        with self._lock:
            self.counters.requests.append(request)


def _hide_newlines(environ: dict[str, Any]) -> None:
    environ["PATH_INFO"] = environ.get("PATH_INFO", "").replace("\n", _STANDIN_WSGI)
    query = environ.get("QUERY_STRING", "")
    environ["QUERY_STRING"] = query.replace("%0A", _STANDIN_URL).replace("%0a", _STANDIN_URL)


def _restore_newlines(body: bytes) -> bytes:
    return body.replace(_STANDIN_URL.encode(), b"%0A").replace(_NEWLINE_STANDIN.encode(), b"\n")


class SortedListing:
    """WSGI middleware: *seeded* buckets answered from a sorted index of their keys.

    moto scans and sorts a whole bucket for every ListObjectsV2 page (0.6 s a page at 100k
    keys), and keeps a spooled buffer per object, so a million keys can neither be PUT
    nor listed in the time of a test or a benchmark. A seeded bucket is created in moto
    as usual; its keys are then put straight into this index (a million in seconds), each
    pointing at one of a few shared bodies. ListObjectsV2 on it is answered here by
    bisection (``prefix``, ``start-after``, ``continuation-token``, ``delimiter``,
    ``max-keys``, ``encoding-type=url``) as real S3 XML; GET and HEAD of seeded keys are
    served from the shared bodies (ranges and ``If-Match`` included). PUTs and DELETEs go to
    moto and update the index, so an object added later is listed and served by moto.
    Buckets that were not seeded go to moto untouched.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self._buckets: dict[str, _SeededBucket] = {}
        self._lock = threading.Lock()

    def seed(self, bucket: str, bodies: list[bytes], objects: Iterable[tuple[str, int, float]]) -> int:
        """Add ``(key, body index, LastModified)`` objects to ``bucket``; returns how many it holds."""
        with self._lock:
            seeded = self._buckets.setdefault(bucket, _SeededBucket())
            seeded.add(bodies, objects)
            return len(seeded.keys)

    def seed_request(self, environ: dict[str, Any]) -> dict[str, Any]:
        """``POST /_localserver/seed?bucket=B``: a gzip body whose first line is a JSON list of
        base64 bodies, then one ``key<TAB>body index<TAB>LastModified`` line per object."""
        bucket = parse_qs(environ.get("QUERY_STRING", "")).get("bucket", [""])[0]
        payload = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        head, _, rest = gzip.decompress(payload).decode().partition("\n")
        bodies = [base64.b64decode(body) for body in json.loads(head)]
        rows = (line.split("\t") for line in rest.splitlines() if line)
        count = self.seed(bucket, bodies, ((key, int(body), float(stamp)) for key, body, stamp in rows))
        return {"bucket": bucket, "keys": count}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        bucket, _, key = unquote(environ.get("PATH_INFO", "").lstrip("/")).partition("/")
        seeded = self._buckets.get(bucket)
        if seeded is None:
            return self.app(environ, start_response)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if method == "GET" and not key and query.get("list-type") == ["2"]:
            with self._lock:
                body = seeded.list_v2(bucket, query)
            start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        if method in ("GET", "HEAD") and seeded.serves(key):
            return seeded.serve(key, method, environ, start_response)
        if method in ("PUT", "DELETE") and key and not query:
            return self._write_through(seeded, key, method, environ, start_response)
        return self.app(environ, start_response)

    def _write_through(self, seeded: _SeededBucket, key: str, method: str, environ: dict[str, Any],
                       start_response: StartResponse) -> Iterable[bytes]:
        """Let moto store or delete the object, and keep the index in step."""
        started: list[Any] = []
        body = b"".join(self.app(environ, lambda *args: started.append(args)))
        status, headers = started[0][0], started[0][1]
        if status.startswith("2"):
            etag = next((value.strip('"') for name, value in headers if name.lower() == "etag"), "")
            with self._lock:
                if method == "PUT":
                    seeded.put(key, int(environ.get("CONTENT_LENGTH") or 0), etag, time.time())
                else:
                    seeded.delete(key)
        start_response(status, headers)
        return [body]


_LIST_PAGE = 1000
_PAST_EVERYTHING = "\U0010ffff"


class _SeededBucket:
    """The sorted keys of one seeded bucket; each object is ``(body index or -1, size, etag, mtime)``."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.objects: dict[str, tuple[int, int, str, float]] = {}
        self.bodies: list[bytes] = []
        self.etags: list[str] = []

    def add(self, bodies: list[bytes], objects: Iterable[tuple[str, int, float]]) -> None:
        base = len(self.bodies)
        self.bodies.extend(bodies)
        self.etags.extend(hashlib.md5(body).hexdigest() for body in bodies)
        for key, body, stamp in objects:
            self.objects[key] = (base + body, len(self.bodies[base + body]), self.etags[base + body], stamp)
        self.keys = sorted(self.objects)

    def put(self, key: str, size: int, etag: str, stamp: float) -> None:
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = (-1, size, etag, stamp)

    def delete(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]

    def serves(self, key: str) -> bool:
        found = self.objects.get(key)
        return found is not None and found[0] >= 0

    def serve(self, key: str, method: str, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        body_index, size, etag, stamp = self.objects[key]
        if environ.get("HTTP_IF_MATCH", etag).strip('"') not in (etag, "*"):
            start_response("412 Precondition Failed", [("Content-Length", "0")])
            return [b""]
        body = self.bodies[body_index]
        status, first, last = "200 OK", 0, size - 1
        byte_range = _parse_range(environ.get("HTTP_RANGE", ""), size)
        headers = [("ETag", f'"{etag}"'), ("Last-Modified", formatdate(stamp, usegmt=True)),
                   ("Content-Type", "binary/octet-stream"), ("Accept-Ranges", "bytes")]
        if byte_range is not None:
            status, (first, last) = "206 Partial Content", byte_range
            headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
        headers.append(("Content-Length", str(last - first + 1)))
        start_response(status, headers)
        return [b"" if method == "HEAD" else body[first: last + 1]]

    def list_v2(self, bucket: str, query: dict[str, list[str]]) -> bytes:
        def arg(name: str) -> str:
            return query.get(name, [""])[0]

        prefix, delimiter, start_after = arg("prefix"), arg("delimiter"), arg("start-after")
        token = arg("continuation-token")
        limit = min(_LIST_PAGE, int(arg("max-keys") or _LIST_PAGE))
        after = max(start_after, base64.urlsafe_b64decode(token).decode() if token else "")
        position = max(bisect.bisect_right(self.keys, after) if after else 0, bisect.bisect_left(self.keys, prefix))
        contents: list[str] = []
        folders: list[str] = []
        last = ""
        while position < len(self.keys) and len(contents) + len(folders) < limit:
            key = self.keys[position]
            if not key.startswith(prefix):
                break
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                last = key[: cut + len(delimiter)]
                folders.append(last)
                position = bisect.bisect_left(self.keys, last + _PAST_EVERYTHING)
                continue
            contents.append(key)
            last = key
            position += 1
        truncated = position < len(self.keys) and self.keys[position].startswith(prefix) and bool(last)
        return self._xml(bucket, query, contents, folders, truncated, last)

    def _xml(self, bucket: str, query: dict[str, list[str]], contents: list[str], folders: list[str],
             truncated: bool, last: str) -> bytes:
        encode = _url_encoder if query.get("encoding-type") == ["url"] else xml_escape
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                 f"<Name>{xml_escape(bucket)}</Name><Prefix>{encode(query.get('prefix', [''])[0])}</Prefix>"]
        for name, tag in (("delimiter", "Delimiter"), ("start-after", "StartAfter")):
            if name in query:
                parts.append(f"<{tag}>{encode(query[name][0])}</{tag}>")
        if "continuation-token" in query:
            parts.append(f"<ContinuationToken>{xml_escape(query['continuation-token'][0])}</ContinuationToken>")
        if "encoding-type" in query:
            parts.append(f"<EncodingType>{xml_escape(query['encoding-type'][0])}</EncodingType>")
        parts.append(f"<MaxKeys>{_LIST_PAGE}</MaxKeys><KeyCount>{len(contents) + len(folders)}</KeyCount>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            token = base64.urlsafe_b64encode(last.encode()).decode()
            parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
        for key in contents:
            _, size, etag, stamp = self.objects[key]
            modified = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            parts.append(f"<Contents><Key>{encode(key)}</Key><LastModified>{modified}</LastModified>"
                         f"<ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
        parts.extend(f"<CommonPrefixes><Prefix>{encode(folder)}</Prefix></CommonPrefixes>" for folder in folders)
        parts.append("</ListBucketResult>")
        return "".join(parts).encode()


def _url_encoder(value: str) -> str:
    return quote(value, safe="/")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=A-B``, ``bytes=A-`` or ``bytes=-N`` as an inclusive ``(first, last)``; None for the whole."""
    if not header.startswith("bytes=") or size == 0:
        return None
    first_text, _, last_text = header[6:].partition("-")
    if not first_text:
        return max(0, size - int(last_text)), size - 1
    return int(first_text), min(size - 1, int(last_text)) if last_text else size - 1


class LocalS3Server:
    """moto's S3 on 127.0.0.1, on a free port, in a thread of this process."""

    def __init__(self, latency_ms: float = 0.0, port: int = 0) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler  # type: ignore[import-untyped]
        from moto.moto_server.werkzeug_app import (  # type: ignore[import-untyped]
            DomainDispatcherApplication,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.listing = SortedListing(DomainDispatcherApplication(create_backend_app))
        self.middleware = CountingMiddleware(self.listing, latency_ms)
        self._server = make_server(
            "127.0.0.1", port, self.middleware, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-s3", daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    @property
    def counters(self) -> Counters:
        return self.middleware.counters

    def start(self) -> LocalS3Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def client(self) -> Any:
        """A plain boto3 client for this server: the tests' independent reference."""
        import boto3
        import botocore.config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )

    def iter_requests(self) -> Iterator[Request]:
        return iter(list(self.counters.requests))


def main(argv: list[str] | None = None) -> int:
    """``python -m s3logfs.devtools.localserver``: serve in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m s3logfs.devtools.localserver", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    args = parser.parse_args(argv)
    server = LocalS3Server(latency_ms=args.latency_ms, port=args.port).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    sys.stdout.write(server.endpoint_url + "\n")
    sys.stdout.flush()
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
