"""A local S3 server for the demo, the tests and the benchmark: moto behind a small middleware.

The middleware counts requests and response bytes per kind (LIST, GET, HEAD...), tracks
the most requests in flight at once, can add a fixed latency per request (real S3 from
EC2 answers in 20-50 ms), and can inject faults (5xx answers, bodies cut short) so that
the retry paths are exercised against a real HTTP server. Needs the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

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
    """Make the next ``count`` matching requests fail: ``status`` 5xx, or a body cut after ``truncate_at``."""

    count: int
    kind: str = "get"
    status: int | None = 500
    truncate_at: int | None = None
    key_contains: str = ""
    skip: int = 0
    """Matching requests to let through before the fault starts."""


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

    def reset(self) -> None:
        with self._lock:
            self.counters = Counters()

    def _take_fault(self, kind: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.kind == kind and fault.key_contains in key:
                    if fault.skip > 0:
                        fault.skip -= 1
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
        """``/_localserver/{stats,reset,latency?ms=N}``: how a benchmark in another process drives us."""
        action = environ.get("PATH_INFO", "")[len(CONTROL_PATH):]
        query = parse_qs(environ.get("QUERY_STRING", ""))
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
            if fault is not None and fault.status is not None:
                return self._fail(fault.status, method, kind, bucket, key, environ, start_response)
            started: list[Any] = []
            _hide_newlines(environ)
            original = b"".join(self.app(environ, lambda *args: started.append(args)))
            body = _restore_newlines(original)
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
        self.middleware = CountingMiddleware(DomainDispatcherApplication(create_backend_app), latency_ms)
        self._server = make_server(
            "127.0.0.1", port, self.middleware, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-s3", daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

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
    """``python -m s3logfs.localserver``: serve in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m s3logfs.localserver", description=__doc__.splitlines()[0])
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
