"""Deterministic generators of realistic AWS log objects for the s3logfs demo.

The embedded demo, the tests and the benchmark use these functions to fill a
bucket with objects that look like what AWS delivers to S3:

* S3 server access logs: plain text, key ``TargetPrefix + YYYY-mm-DD-HH-MM-SS-UniqueString``;
* Application Load Balancer access logs: single-member gzip ``.log.gz`` under
  ``AWSLogs/<account>/elasticloadbalancing/<region>/YYYY/MM/DD/``;
* CloudFront standard logs: gzip with the ``#Version`` / ``#Fields`` header lines;
* CloudWatch Logs subscription envelopes delivered by Firehose: a multi-member
  gzip object, one member per ``DATA_MESSAGE`` envelope, envelopes concatenated
  without any delimiter.

Line layouts follow the AWS documentation samples field for field so that
GoAccess (``AWSS3``, ``AWSALB``, ``CLOUDFRONT``) and lnav (``s3_log``,
``alb_log``, ``w3c_log``) parse every line.

Time conventions: ``when`` is naive UTC or timezone-aware.  The first record of
an object is stamped exactly ``when``; later records move forward (never
backwards) and stay inside the time bucket that the key names (the 5-minute
interval for ALB, the hour for CloudFront and Firehose; only when ``when`` is
within microseconds of the bucket's end, or for a huge ``large_gzip_object``,
can the last records spill past it).  Keys carry the millisecond of ``when``
at the front of their "unique" part, so for one format and prefix a later
``when`` (by at least 1 ms) gives a key that sorts later.

Everything is drawn from the ``random.Random`` passed in and gzip headers use
``mtime=0``: the same seed and arguments give the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import io
import itertools
import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = [
    "DemoObject",
    "s3_access_object",
    "alb_object",
    "cloudfront_object",
    "cwl_firehose_object",
    "seed_objects",
    "next_live_object",
    "large_gzip_object",
]

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
SITE_HOST = "www.example.com"

S3_BUCKET = "example-site-assets"
S3_OWNER_ID = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
S3_HOST = f"{S3_BUCKET}.s3.{REGION}.amazonaws.com"

ALB_NAME = "my-alb"
ALB_ID = "50dc6c495c0c9188"
ALB_NODE_IPS = ("10.0.0.1", "10.0.1.17", "10.0.2.33")
ALB_CERT_ARN = f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/3f1c2a4e-8b7d-4e2f-9a61-0c5d7e8f9b12"
_TG_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:targetgroup"
ALB_TG_WEB = f"{_TG_ARN}/web-targets/73e2d6bc24d8a067"
ALB_TG_API = f"{_TG_ARN}/api-targets/1d84f3d73c47ec4e"
ALB_WEB_TARGETS = ("10.0.1.23:80", "10.0.2.117:80", "10.0.3.41:80")
ALB_API_TARGETS = ("10.0.1.88:8080", "10.0.2.54:8080")

CF_DISTRIBUTION = "E2EXAMPLE"
CF_DOMAIN = "d111111abcdef8.cloudfront.net"
CF_EDGES = ("IAD89-P1", "IAD12-P2", "LAX1", "SEA19-C1", "DFW56-P1", "FRA56-P5", "LHR61-P1", "NRT57-P2")

FIREHOSE_STREAM = "my-stream"
CWL_LOG_GROUP = "/aws/lambda/orders-api"
CWL_FILTER = "cwl-to-firehose"

CLOUDFRONT_HEADER = (
    "#Version: 1.0\n"
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end\n"
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

# (weight, user agent) -- real browser strings plus a few tools and a crawler.
_USER_AGENTS = (
    (30, ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")),
    (14, ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Safari/605.1.15")),
    (14, ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1")),
    (12, ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Mobile Safari/537.36")),
    (9, "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    (8, ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.61")),
    (5, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    (4, "curl/8.4.0"),
)
_UA_LIST = tuple(ua for _, ua in _USER_AGENTS)
_UA_CUM = tuple(itertools.accumulate(w for w, _ in _USER_AGENTS))

# (weight, method, path, content type, min body bytes, max body bytes, is_api)
# "{n}" in a path is replaced by an item number.
_RESOURCES = (
    (16, "GET", "/", "text/html", 6_000, 14_000, False),
    (10, "GET", "/index.html", "text/html", 6_000, 14_000, False),
    (12, "GET", "/static/app.js", "application/javascript", 90_000, 240_000, False),
    (9, "GET", "/static/style.css", "text/css", 12_000, 40_000, False),
    (7, "GET", "/images/logo.png", "image/png", 3_000, 9_000, False),
    (5, "GET", "/favicon.ico", "image/x-icon", 1_150, 1_150, False),
    (4, "GET", "/login", "text/html", 3_000, 5_000, False),
    (11, "GET", "/api/v1/items", "application/json", 2_000, 20_000, True),
    (18, "GET", "/api/v1/items/{n}", "application/json", 300, 1_800, True),
    (4, "GET", "/api/v1/users/me", "application/json", 200, 600, True),
    (3, "POST", "/api/v1/items", "application/json", 150, 900, True),
)
_RES_CUM = tuple(itertools.accumulate(r[0] for r in _RESOURCES))

_STATUSES = (200, 304, 404, 302, 403, 500, 502)
_STATUS_CUM = tuple(itertools.accumulate((82, 7, 6, 1, 1, 2, 1)))

_PUBLIC_FIRST_OCTETS = (23, 31, 37, 45, 52, 63, 66, 73, 81, 88, 94, 98, 104, 108,
                        151, 176, 185, 188, 203, 212, 217)


@dataclass(frozen=True)
class DemoObject:
    """One generated S3 object."""

    key: str  # S3 key relative to the bucket
    body: bytes  # stored bytes (gzip-compressed where the format is)
    content: bytes  # decompressed content (what a reader should see)


# --------------------------------------------------------------------------- helpers


def _utc(when: datetime) -> datetime:
    """Return ``when`` as an aware UTC datetime (naive input is taken as UTC)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _epoch_us(when: datetime) -> int:
    """Microseconds since the Unix epoch."""
    delta = _utc(when) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(epoch_us: int) -> datetime:
    """Aware UTC datetime from microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=epoch_us)


def _bucket_left_us(start_us: int, bucket_s: int) -> int:
    """Microseconds from ``start_us`` to the end of its ``bucket_s``-second bucket."""
    size = bucket_s * 1_000_000
    return size - start_us % size


def _check_count(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _timeline(rng: random.Random, start_us: int, n: int, span_us: int) -> list[int]:
    """``n`` strictly increasing epoch-µs stamps, the first at ``start_us``, within ``span_us``."""
    room = max(span_us - n, 0)
    offsets = sorted(rng.randrange(room + 1) for _ in range(n - 1))
    stamps = [start_us]
    for off in offsets:
        stamps.append(max(start_us + off, stamps[-1] + 1))
    return stamps


def _client_pool(rng: random.Random, size: int) -> tuple[list[str], list[float]]:
    """Client IPs and cumulative weights: a few busy clients, a long tail."""
    ips = [f"{rng.choice(_PUBLIC_FIRST_OCTETS)}.{rng.randint(1, 254)}."
           f"{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(size)]
    weights = [1.0 / (rank + 1) for rank in range(size)]
    return ips, list(itertools.accumulate(weights))


def _gzip(data: bytes, level: int = 6) -> bytes:
    """Deterministic single-member gzip (mtime 0)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def _hex_upper(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}X}"


def _base36(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        out.append(_BASE36[digit])
    return "".join(reversed(out))


def _ms_in(start_us: int, bucket_s: int) -> int:
    """Milliseconds elapsed since the start of the ``bucket_s`` bucket containing ``start_us``."""
    return start_us % (bucket_s * 1_000_000) // 1000


def _resource(rng: random.Random, res: tuple) -> tuple[str, str, str, int, bool]:
    """Concrete (method, path, content type, body size, is_api) for a resource entry."""
    _, method, path, ctype, low, high, is_api = res
    if "{n}" in path:
        path = path.replace("{n}", str(rng.randint(1, 480)))
    return method, path, ctype, rng.randint(low, high), is_api


# --------------------------------------------------------------------------- S3 access


def _s3_request(rng: random.Random, res: tuple, status: int) -> tuple[str, ...]:
    """(requester, operation, key, request-URI, sig, auth, error, bytes, object size)."""
    _method, path, _ctype, size, is_api = _resource(rng, res)
    if is_api or rng.random() < 0.12:
        return _s3_sdk_request(rng, status)
    key = "index.html" if path == "/" else path.lstrip("/")
    sent, obj = _s3_sizes(status, size)
    err = _S3_ERRORS.get(status, "-")
    return "-", "REST.GET.OBJECT", key, f"GET /{key} HTTP/1.1", "-", "-", err, sent, obj


_S3_ERRORS = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError", 502: "InternalError",
              503: "SlowDown"}
_S3_STATUS = {302: 200, 502: 503}  # S3 answers neither 302 (no website redirects) nor 502
_S3_ERROR_BYTES = {403: 243, 404: 318, 500: 282, 502: 282, 503: 254}


def _s3_sizes(status: int, size: int) -> tuple[str, str]:
    if status == 200:
        return str(size), str(size)
    if status in _S3_ERROR_BYTES:
        return str(_S3_ERROR_BYTES[status]), "-"
    return "-", str(size)


def _s3_sdk_request(rng: random.Random, status: int) -> tuple[str, ...]:
    """An authenticated SDK/CLI request (deploy pipeline, batch job)."""
    requester = rng.choice((f"arn:aws:iam::{ACCOUNT_ID}:user/deploy",
                            f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/orders-api-role/orders-api"))
    err = _S3_ERRORS.get(status, "-")
    pick = rng.random()
    if pick < 0.3:
        sent = str(rng.randint(900, 6000)) if status == 200 else str(_S3_ERROR_BYTES.get(status, 243))
        return (requester, "REST.GET.BUCKET", "-",
                "GET /?list-type=2&prefix=static%2F&encoding-type=url HTTP/1.1",
                "SigV4", "AuthHeader", err, sent, "-")
    key = f"data/items/{rng.randint(1, 480)}.json"
    size = rng.randint(300, 1800)
    if pick < 0.55:
        sent, obj = ("-", str(size)) if status == 200 else _s3_sizes(status, size)
        return (requester, "REST.PUT.OBJECT", key, f"PUT /{key} HTTP/1.1", "SigV4", "AuthHeader",
                err, sent, obj)
    if pick < 0.7:
        return (requester, "REST.HEAD.OBJECT", key, f"HEAD /{key} HTTP/1.1", "SigV4", "AuthHeader",
                err, "-", str(size) if status == 200 else "-")
    sent, obj = _s3_sizes(status, size)
    return (requester, "REST.GET.OBJECT", key, f"GET /{key} HTTP/1.1", "SigV4", "AuthHeader",
            err, sent, obj)


def _s3_time(epoch_us: int) -> str:
    t = _from_us(epoch_us)
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year:04d}:{t:%H:%M:%S} +0000"


def _s3_line(rng: random.Random, epoch_us: int, ip: str, ua: str, res: tuple, status: int) -> str:
    status = _S3_STATUS.get(status, status)
    requester, op, key, uri, sig, auth, err, sent, obj = _s3_request(rng, res, status)
    if requester != "-":
        ua = rng.choice((("aws-cli/2.15.10 Python/3.11.6 Linux/6.1.66 exe/x86_64.amzn.2023 "
                          "prompt/off command/s3.cp"),
                         ("Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#6.1.66 "
                          "md/arch#x86_64 lang/python#3.11.6 cfg/retry-mode#legacy Botocore/1.34.11")))
    total = rng.randint(2, 40) if sent == "-" or int(sent) < 20_000 else rng.randint(20, 320)
    turn = str(rng.randint(1, total)) if err == "-" else "-"
    referer = f"https://{SITE_HOST}/" if requester == "-" and rng.random() < 0.6 else "-"
    tls, cipher = rng.choice((("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
                              ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")))
    host_id = base64.b64encode(rng.getrandbits(448).to_bytes(56, "big")).decode()
    return (f"{S3_OWNER_ID} {S3_BUCKET} [{_s3_time(epoch_us)}] {ip} {requester} {_hex_upper(rng, 16)} "
            f"{op} {key} \"{uri}\" {status} {err} {sent} {obj} {total} {turn} \"{referer}\" \"{ua}\" "
            f"- {host_id} {sig} {cipher} {auth} {S3_HOST} {tls}\n")


def s3_access_object(rng: random.Random, when: datetime, lines: int,
                     prefix: str = "s3-access/") -> DemoObject:
    """Plain-text S3 server access log object with ``lines`` records starting at ``when``."""
    _check_count("lines", lines)
    start = _epoch_us(when)
    stamps = _timeline(rng, start, lines, min(300_000_000, lines * 2_000_000))
    ips, ip_cum = _client_pool(rng, rng.randint(8, 40))
    text = "".join(
        _s3_line(rng, ts, rng.choices(ips, cum_weights=ip_cum)[0],
                 rng.choices(_UA_LIST, cum_weights=_UA_CUM)[0],
                 rng.choices(_RESOURCES, cum_weights=_RES_CUM)[0],
                 rng.choices(_STATUSES, cum_weights=_STATUS_CUM)[0])
        for ts in stamps)
    t = _from_us(start)
    unique = f"{t.microsecond // 1000:03X}{_hex_upper(rng, 13)}"
    key = f"{prefix}{t:%Y-%m-%d-%H-%M-%S}-{unique}"
    content = text.encode()
    return DemoObject(key=key, body=content, content=content)


# --------------------------------------------------------------------------- ALB


class _AlbContext:
    """Per-object constants and caches for ALB line generation."""

    def __init__(self, rng: random.Random) -> None:
        self.ips, self.ip_cum = _client_pool(rng, rng.randint(12, 60))
        self.sec_cache: dict[int, str] = {}

    def stamp(self, epoch_us: int) -> str:
        sec, micro = divmod(epoch_us, 1_000_000)
        text = self.sec_cache.get(sec)
        if text is None:
            text = f"{_from_us(sec * 1_000_000):%Y-%m-%dT%H:%M:%S}"
            self.sec_cache[sec] = text
        return f"{text}.{micro:06d}Z"


def _alb_times(rng: random.Random, is_api: bool, elb_status: int) -> tuple[str, str, str, int]:
    """Request/target/response processing times as logged, and their sum in µs."""
    req_ms = rng.randrange(0, 3)
    resp_ms = rng.randrange(0, 2)
    if elb_status == 502:
        return f"{req_ms / 1000:.3f}", "-1", "-1", req_ms * 1000
    tgt = (rng.expovariate(1 / 0.06) if is_api else rng.expovariate(1 / 0.004)) + 0.001
    total_us = req_ms * 1000 + int(tgt * 1e6) + resp_ms * 1000
    return f"{req_ms / 1000:.3f}", f"{tgt:.3f}", f"{resp_ms / 1000:.3f}", total_us


def _alb_lines(rng: random.Random, ctx: _AlbContext, stamps: list[int]) -> list[str]:
    """ALB access log lines, one per stamp (the stamp is the response time)."""
    n = len(stamps)
    ips = rng.choices(ctx.ips, cum_weights=ctx.ip_cum, k=n)
    uas = rng.choices(_UA_LIST, cum_weights=_UA_CUM, k=n)
    resources = rng.choices(_RESOURCES, cum_weights=_RES_CUM, k=n)
    statuses = rng.choices(_STATUSES, cum_weights=_STATUS_CUM, k=n)
    return [_alb_line(rng, ctx, *row) for row in zip(stamps, ips, uas, resources, statuses)]


def _alb_line(rng: random.Random, ctx: _AlbContext, ts: int, ip: str, ua: str,
              res: tuple, status: int) -> str:
    method, path, _ctype, size, is_api = _resource(rng, res)
    if method == "POST" and status == 200:
        status = 201
    tgt_status = "-" if status == 502 else str(status)
    kind = rng.random()
    typ, scheme, port, proto = (("h2", "https", 443, "HTTP/2.0") if kind < 0.55 else
                                ("https", "https", 443, "HTTP/1.1") if kind < 0.9 else
                                ("http", "http", 80, "HTTP/1.1"))
    tls = ("ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2" if rng.random() < 0.4 else
           "TLS_AES_128_GCM_SHA256 TLSv1.3") if scheme == "https" else "- -"
    target = rng.choice(ALB_API_TARGETS if is_api else ALB_WEB_TARGETS)
    req_t, tgt_t, resp_t, took_us = _alb_times(rng, is_api, status)
    sent = 260 + (size if status in (200, 201) else 180 if status == 404 else 0)
    received = rng.randint(140, 900) + (size if method == "POST" else 0)
    created = ts - took_us
    trace = f"Root=1-{created // 1_000_000:08x}-{rng.getrandbits(96):024x}"
    sni = f'"{SITE_HOST}" "{ALB_CERT_ARN}"' if scheme == "https" else '"-" "-"'
    group, prio = (ALB_TG_API, 1) if is_api else (ALB_TG_WEB, 0)
    return (f"{typ} {ctx.stamp(ts)} app/{ALB_NAME}/{ALB_ID} {ip}:{rng.randint(1024, 65535)} {target} "
            f"{req_t} {tgt_t} {resp_t} {status} {tgt_status} {received} {sent} "
            f"\"{method} {scheme}://{SITE_HOST}:{port}{path} {proto}\" \"{ua}\" {tls} {group} "
            f"\"{trace}\" {sni} {prio} {ctx.stamp(created)} \"forward\" \"-\" \"-\" "
            f"\"{target}\" \"{tgt_status}\" \"-\" \"-\"\n")


def _alb_key(rng: random.Random, start_us: int, prefix: str) -> str:
    """AWS ALB key; the end-time field is ``when`` floored to its 5-minute interval."""
    interval = start_us // 300_000_000
    t = _from_us(interval * 300_000_000)
    node = ALB_NODE_IPS[interval % len(ALB_NODE_IPS)]
    unique = _base36(_ms_in(start_us, 300), 4) + _base36(rng.getrandbits(20), 4)
    return (f"{prefix}AWSLogs/{ACCOUNT_ID}/elasticloadbalancing/{REGION}/{t:%Y/%m/%d}/"
            f"{ACCOUNT_ID}_elasticloadbalancing_{REGION}_app.{ALB_NAME}.{ALB_ID}_"
            f"{t:%Y%m%dT%H%MZ}_{node}_{unique}.log.gz")


def alb_object(rng: random.Random, when: datetime, lines: int, prefix: str = "alb/") -> DemoObject:
    """Gzip (single member) ALB access log with ``lines`` records starting at ``when``."""
    _check_count("lines", lines)
    start = _epoch_us(when)
    key = _alb_key(rng, start, prefix)
    stamps = _timeline(rng, start, lines, _bucket_left_us(start, 300))
    content = "".join(_alb_lines(rng, _AlbContext(rng), stamps)).encode()
    return DemoObject(key=key, body=_gzip(content), content=content)


_ALB_LINE_BYTES = 560  # a little under the mean generated ALB line length (~630 bytes)


def large_gzip_object(rng: random.Random, when: datetime, min_decompressed_bytes: int,
                      prefix: str = "alb-big/") -> DemoObject:
    """One big single-member gzip ALB log whose content is >= ``min_decompressed_bytes``."""
    start = _epoch_us(when)
    key = _alb_key(rng, start, prefix)
    ctx = _AlbContext(rng)
    est_lines = max(1, min_decompressed_bytes // _ALB_LINE_BYTES + 1)
    step = max(2, 3 * _bucket_left_us(start, 300) // (2 * est_lines))  # mean gap: 3/4 of an even share
    content, body = io.BytesIO(), io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=body, mtime=0) as gz:
        ts = start
        while content.tell() < min_decompressed_bytes or content.tell() == 0:
            batch = min(20_000, (min_decompressed_bytes - content.tell()) // _ALB_LINE_BYTES + 1)
            stamps = []
            for _ in range(batch):
                stamps.append(ts)
                ts += 1 + rng.randrange(step)
            chunk = "".join(_alb_lines(rng, ctx, stamps)).encode()
            content.write(chunk)
            gz.write(chunk)
    return DemoObject(key=key, body=body.getvalue(), content=content.getvalue())


# --------------------------------------------------------------------------- CloudFront


_CF_ENCODE = {c: f"%{ord(c):02X}" for c in ' "#%<>[\\]^`{|}'}


def _cf_encode(text: str) -> str:
    """CloudFront's URL-encoding of header values (space becomes %20, ...)."""
    return "".join(_CF_ENCODE.get(c, c) for c in text)


def _cf_result(rng: random.Random, status: int) -> tuple[str, str]:
    """(x-edge-result-type, x-edge-detailed-result-type)."""
    if status in (200, 304):
        pick = rng.random()
        result = "Hit" if pick < 0.7 else "Miss" if pick < 0.93 else "RefreshHit"
        return result, result
    if status == 302:
        return "Miss", "Miss"
    if status == 502:
        return "Error", "OriginConnectError"
    return "Error", "Error"


def _cf_line(rng: random.Random, epoch_us: int, ip: str, ua: str, res: tuple, status: int) -> str:
    method, path, ctype, size, _is_api = _resource(rng, res)
    result, detailed = _cf_result(rng, status)
    t = _from_us(epoch_us)
    https = rng.random() < 0.93
    proto_ver = rng.choice(("HTTP/2.0", "HTTP/2.0", "HTTP/3.0", "HTTP/1.1")) if https else "HTTP/1.1"
    ssl = rng.choice(("TLSv1.3\tTLS_AES_128_GCM_SHA256", "TLSv1.2\tECDHE-RSA-AES128-GCM-SHA256")) \
        if https else "-\t-"
    body_len = size if status in (200, 201) else 0 if status == 304 else rng.randint(400, 1000)
    length = "-" if status == 304 else str(body_len)
    ctype = "-" if status == 304 else ctype if status in (200, 201) else "text/html"
    taken = (rng.expovariate(1 / 0.004) if result == "Hit" else rng.expovariate(1 / 0.08)) + 0.001
    ttfb = taken * rng.uniform(0.6, 1.0)
    request_id = base64.urlsafe_b64encode(rng.getrandbits(320).to_bytes(40, "big")).decode()
    referer = f"https://{SITE_HOST}/" if path != "/" and rng.random() < 0.7 else "-"
    query = f"page={rng.randint(1, 9)}" if path == "/api/v1/items" and rng.random() < 0.5 else "-"
    return (f"{t:%Y-%m-%d}\t{t:%H:%M:%S}\t{rng.choice(CF_EDGES)}\t{body_len + rng.randint(280, 520)}\t"
            f"{ip}\t{method}\t{CF_DOMAIN}\t{path}\t{status}\t{referer}\t{_cf_encode(ua)}\t{query}\t-\t"
            f"{result}\t{request_id}\t{SITE_HOST}\t{'https' if https else 'http'}\t"
            f"{rng.randint(60, 900)}\t{taken:.3f}\t-\t{ssl}\t{result}\t{proto_ver}\t-\t-\t"
            f"{rng.randint(1024, 65535)}\t{ttfb:.3f}\t{detailed}\t{ctype}\t{length}\t-\t-\n")


def cloudfront_object(rng: random.Random, when: datetime, lines: int,
                      prefix: str = "cloudfront/") -> DemoObject:
    """Gzip CloudFront standard log (header + ``lines`` records) starting at ``when``."""
    _check_count("lines", lines)
    start = _epoch_us(when)
    stamps = _timeline(rng, start, lines, min(900_000_000, _bucket_left_us(start, 3600)))
    ips, ip_cum = _client_pool(rng, rng.randint(10, 50))
    body_lines = [
        _cf_line(rng, ts, rng.choices(ips, cum_weights=ip_cum)[0],
                 rng.choices(_UA_LIST, cum_weights=_UA_CUM)[0],
                 rng.choices(_RESOURCES, cum_weights=_RES_CUM)[0],
                 rng.choices(_STATUSES, cum_weights=_STATUS_CUM)[0])
        for ts in stamps]
    content = (CLOUDFRONT_HEADER + "".join(body_lines)).encode()
    t = _from_us(start)
    unique = f"{_ms_in(start, 3600):06x}{rng.getrandbits(8):02x}"
    key = f"{prefix}{CF_DISTRIBUTION}.{t:%Y-%m-%d-%H}.{unique}.gz"
    return DemoObject(key=key, body=_gzip(content), content=content)


# --------------------------------------------------------------------------- CWL via Firehose


_STAMP = "<event-time>"  # placeholder in Lambda messages, replaced by each event's own time


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _lambda_invocation(rng: random.Random) -> list[str]:
    """Messages of one Lambda (Node.js runtime) invocation, without trailing newlines."""
    rid = _uuid4(rng)
    item = rng.randint(1, 480)
    duration = rng.expovariate(1 / 40) + 1.5
    messages = [f"START RequestId: {rid} Version: $LATEST",
                f"{_STAMP}\t{rid}\tINFO\tGET /api/v1/items/{item} from {_client_pool(rng, 1)[0][0]}"]
    if rng.random() < 0.08:
        messages.append(f"{_STAMP}\t{rid}\tERROR\tError: connect ETIMEDOUT 10.0.3.17:5432")
    else:
        messages.append(f"{_STAMP}\t{rid}\tINFO\titem {item} served in {duration:.1f} ms "
                        f"(cache {'hit' if rng.random() < 0.7 else 'miss'})")
    messages += [f"END RequestId: {rid}",
                 (f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\tBilled Duration: "
                  f"{math.ceil(duration)} ms\tMemory Size: 256 MB\t"
                  f"Max Memory Used: {rng.randint(68, 112)} MB\t")]
    return messages


def _cwl_events(rng: random.Random, stamps_ms: list[int]) -> list[dict]:
    """``logEvents`` entries for the given millisecond stamps."""
    messages: list[str] = []
    base_id = rng.randrange(10 ** 55, 10 ** 56 - len(stamps_ms))
    events = []
    for index, ms in enumerate(stamps_ms):
        if not messages:
            messages = _lambda_invocation(rng)
        stamp = f"{_from_us(ms * 1000):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
        message = messages.pop(0).replace(_STAMP, stamp)
        events.append({"id": str(base_id + index), "timestamp": ms, "message": message})
    return events


def _cwl_envelope(rng: random.Random, t: datetime, stamps_ms: list[int]) -> bytes:
    """One minified DATA_MESSAGE envelope (key order as in the AWS documentation sample)."""
    envelope = {
        "owner": ACCOUNT_ID,
        "logGroup": CWL_LOG_GROUP,
        "logStream": f"{t:%Y/%m/%d}/[$LATEST]{rng.getrandbits(128):032x}",
        "subscriptionFilters": [CWL_FILTER],
        "messageType": "DATA_MESSAGE",
        "logEvents": _cwl_events(rng, stamps_ms),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def cwl_firehose_object(rng: random.Random, when: datetime, events_per_member: int, members: int,
                        prefix: str = "cwl-firehose/") -> DemoObject:
    """Multi-member gzip: ``members`` CWL subscription envelopes, each its own gzip member."""
    _check_count("events_per_member", events_per_member)
    _check_count("members", members)
    start = _epoch_us(when)
    total = events_per_member * members
    span = min(60_000_000, _bucket_left_us(start, 3600))
    stamps_ms = [us // 1000 for us in _timeline(rng, start, total, span)]
    t = _from_us(start)
    envelopes = [_cwl_envelope(rng, t, stamps_ms[i:i + events_per_member])
                 for i in range(0, total, events_per_member)]
    unique = f"{t.microsecond // 1000:03x}{_uuid4(rng)[3:]}"
    key = (f"{prefix}{t:%Y/%m/%d/%H}/{FIREHOSE_STREAM}-1-{t:%Y-%m-%d-%H-%M-%S}-{unique}")
    body = b"".join(_gzip(envelope) for envelope in envelopes)
    return DemoObject(key=key, body=body, content=b"".join(envelopes))


# --------------------------------------------------------------------------- mixes


def _one_of(rng: random.Random, fmt: int, when: datetime, low: int, high: int) -> DemoObject:
    """Object of format ``fmt`` (0 S3, 1 ALB, 2 CloudFront, 3 CWL/Firehose), ~low..high records."""
    if fmt == 0:
        return s3_access_object(rng, when, rng.randint(low, high))
    if fmt == 1:
        return alb_object(rng, when, rng.randint(low, high))
    if fmt == 2:
        return cloudfront_object(rng, when, rng.randint(low, high))
    members = rng.randint(1, 4)
    per_member = max(1, rng.randint(low, high) // members)
    return cwl_firehose_object(rng, when, per_member, members)


def seed_objects(rng: random.Random, start: datetime, count_per_format: int = 6) -> list[DemoObject]:
    """``count_per_format`` objects of each format, chronological from ``start``, 20-200 records each."""
    objects: list[DemoObject] = []
    when = start
    for _ in range(count_per_format):
        for fmt in range(4):
            objects.append(_one_of(rng, fmt, when, 20, 200))
            when += timedelta(seconds=rng.randint(20, 150), milliseconds=rng.randint(0, 999))
    keys = [obj.key for obj in objects]
    if len(set(keys)) != len(keys):
        raise RuntimeError("duplicate demo keys")
    return objects


_LIVE_SPAN = {0: timedelta(seconds=80), 1: timedelta(minutes=5), 2: timedelta(minutes=15), 3: timedelta(minutes=1)}
"""The longest time each format's live object spans (S3 access logs: 2 s a line, 40 lines at most;
ALB: its 5-minute interval; CloudFront: 15 minutes; CloudWatch: a minute)."""


def next_live_object(rng: random.Random, when: datetime, seq: int) -> DemoObject:
    """A small new object for the live demo whose lines all lie before ``when``; the format rotates with ``seq``."""
    fmt = seq % 4
    return _one_of(rng, fmt, when - _LIVE_SPAN[fmt], 5, 40)
