"""``--records``: one line per record, in the splitters and through real mounts .

The expected lines are built here from ``json`` and the samples directly, never through
:mod:`s3logfs.engine.records`, so a wrong splitter cannot agree with itself.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount, run, s3logfs_command

from s3logfs.engine import records
from s3logfs.engine.codecs import object_decoder
from s3logfs.engine.records import record_decoder, sniff

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample {path} is not here")
    return path.read_bytes()


def compact_line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def cloudtrail_lines(document: bytes) -> bytes:
    """What the issue asks for: ``json.loads(file)["Records"]`` re-serialized compactly."""
    return b"".join(compact_line(record) for record in json.loads(document)["Records"])


def concatenated_values(text: str) -> list[Any]:
    """Every top-level JSON value of ``text``, values back to back or separated by whitespace."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
    return values


def cwl_lines(text: str) -> bytes:
    """``ISO-timestamp message`` for each event of each DATA_MESSAGE envelope."""
    lines = []
    for envelope in concatenated_values(text):
        if envelope["messageType"] != "DATA_MESSAGE":
            continue
        for event in envelope["logEvents"]:
            when = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event['timestamp'] % 1000:03d}Z"
            lines.append(f"{stamp} {event['message']}\n".encode())
    return b"".join(lines)


def cloudtrail_document(count: int, start: int = 0) -> bytes:
    """A CloudTrail-shaped file: one line, ``{"Records":[...]}``, with non-ASCII and escapes."""
    events = [
        {
            "eventVersion": "1.08",
            "eventTime": f"2026-11-01T08:{(start + n) % 60:02d}:00Z",
            "eventName": "GetObject" if n % 2 else "PutObject",
            "userAgent": "caf\u00e9/1.0 \u65e5\u672c",
            "requestParameters": {"key": f"a/{start + n}\"quoted\"", "nested": [1, {"x": None}, "}{"]},
            "sourceIPAddress": "192.0.2.1",
        }
        for n in range(count)
    ]
    return json.dumps({"Records": events}, ensure_ascii=False).encode()


CONTROL_MESSAGE = (
    b'{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"",'
    b'"subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1432826855000,'
    b'"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}'
)


def decode_in_pieces(mode: str, data: bytes, cuts: list[int]) -> tuple[bytes, int]:
    decoder = record_decoder(mode)
    bounds = [0, *cuts, len(data)]
    out = b"".join(decoder.decode(data[a:b]) for a, b in itertools.pairwise(bounds)) + decoder.flush()
    return out, decoder.unparsed


def assert_every_split_point(mode: str, data: bytes, expected: bytes, unparsed: int = 0) -> None:
    """Whole, byte by byte, and cut once at every position: always the same lines."""
    assert decode_in_pieces(mode, data, []) == (expected, unparsed)
    assert decode_in_pieces(mode, data, list(range(1, len(data)))) == (expected, unparsed)
    for cut in range(1, len(data)):
        assert decode_in_pieces(mode, data, [cut]) == (expected, unparsed), f"cut at {cut}"


# the splitters ----------------------------------------------------------------------


def test_json_splits_concatenated_values_at_every_split_point() -> None:
    assert_every_split_point("json", b'{"a":1}{"a":2}{"a":3}', b'{"a":1}\n{"a":2}\n{"a":3}\n')


def test_json_keeps_values_already_on_their_own_lines() -> None:
    data = b'{"a": 1}\n  {"b": "caf\xc3\xa9"}\r\n\n[1, 2]\n'
    assert_every_split_point("json", data, data)
    assert_every_split_point("json", sample("firehose-newline-delimited.log"), sample("firehose-newline-delimited.log"))


def test_json_compacts_values_that_share_or_span_lines() -> None:
    data = '{"s": "}{\\"x", "e": "\u00e9"} {"n": [1, 2]}\n{\n  "multi": true\n}\n'.encode()
    expected = '{"s":"}{\\"x","e":"\u00e9"}\n{"n":[1,2]}\n{"multi":true}\n'.encode()
    assert_every_split_point("json", data, expected)


def test_json_passes_broken_records_through_on_their_own_lines() -> None:
    data = b'{"a":1}{"a":oops}{"a":3}\nplain text line\n{"a":"cut\n{"b":2}'
    expected = b'{"a":1}\n{"a":oops}\n{"a":3}\nplain text line\n{"a":"cut\n{"b":2}\n'
    assert_every_split_point("json", data, expected, unparsed=3)


def test_json_takes_other_text_a_line_at_a_time() -> None:
    data = b'42 \r\n\xc2\xa0{"a":1}\x0b\n"s"\t\n{"b":2} trailing\n'
    expected = b'42 \r\n\xc2\xa0{"a":1}\x0b\n"s"\t\n{"b":2}\ntrailing\n'
    assert_every_split_point("json", data, expected, unparsed=2)


def test_json_passes_a_truncated_last_record_through() -> None:
    assert_every_split_point("json", b'{"a":1}{"a":[1,2', b'{"a":1}\n{"a":[1,2\n', unparsed=1)


def test_cloudtrail_gives_each_record_compactly_at_every_split_point() -> None:
    document = cloudtrail_document(3)
    assert_every_split_point("cloudtrail", document, cloudtrail_lines(document))


def test_cloudtrail_sample_and_pretty_printed_documents() -> None:
    document = sample("cloudtrail.log")
    assert_every_split_point("cloudtrail", document, cloudtrail_lines(document))
    pretty = json.dumps(json.loads(document), indent=2).encode()
    assert decode_in_pieces("cloudtrail", pretty, [])[0] == cloudtrail_lines(document)


def test_cloudtrail_keeps_utf8_and_escapes_lone_surrogates() -> None:
    document = b'{"Records":[{"u":"caf\\u00e9 \xe6\x97\xa5"},{"bad":"\\ud800"}]}'
    out, unparsed = decode_in_pieces("cloudtrail", document, [])
    assert out == '{"u":"caf\u00e9 \u65e5"}\n{"bad":"\\ud800"}\n'.encode()
    assert unparsed == 0


def test_cloudtrail_passes_a_broken_record_through_and_goes_on() -> None:
    document = b'{"Records":[{"a":1},{"a":nope},{"a":3}]}'
    assert_every_split_point("cloudtrail", document, b'{"a":1}\n{"a":nope}\n{"a":3}\n', unparsed=1)


def test_cloudtrail_memory_is_bounded_by_a_record_not_the_file() -> None:
    document = cloudtrail_document(20000)
    decoder = record_decoder("cloudtrail")
    largest, out = 0, []
    for start in range(0, len(document), 65536):
        out.append(decoder.decode(document[start : start + 65536]))
        largest = max(largest, decoder._size)
    out.append(decoder.flush())
    assert b"".join(out) == cloudtrail_lines(document)
    assert len(document) > 4_000_000
    assert largest < 2000  # what a chunk leaves of one record, never the file


def test_cwl_gives_one_line_per_event_and_drops_control_messages() -> None:
    envelopes = sample("cwl-subscription-via-firehose.json")
    data = envelopes + CONTROL_MESSAGE + b"\n"
    expected = cwl_lines(data.decode())
    assert expected.count(b"\n") == 6 and b"CONTROL" not in expected
    assert_every_split_point("cwl", data, expected)


def test_cwl_through_every_gzip_member() -> None:
    stored = sample("cwl-subscription-via-firehose.gz") + gzip.compress(CONTROL_MESSAGE)
    decoder = object_decoder(records="cwl")
    out = b"".join(decoder.decode(stored[i : i + 7]) for i in range(0, len(stored), 7)) + decoder.flush()
    assert out == cwl_lines(sample("cwl-subscription-via-firehose.json").decode())


def test_cwl_counts_what_is_no_envelope_or_event() -> None:
    data = b'{"messageType":"DATA_MESSAGE","logEvents":[{"timestamp":0,"message":"ok\\n"},{"id":"x"}]}{"x":1}'
    out, unparsed = decode_in_pieces("cwl", data, [])
    assert out == b'1970-01-01T00:00:00.000Z ok\n{"id":"x"}\n{"x":1}\n'
    assert unparsed == 2


def test_an_oversized_record_passes_through_and_parsing_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "MAX_RECORD_CHARS", 64)
    big = b'{"a":"' + b"x" * 200 + b'"}'
    data = b'{"a":1}\n' + big + b'\n{"a":2}{"a":3}\n'
    out, unparsed = decode_in_pieces("json", data, list(range(10, len(data), 10)))
    assert out == b'{"a":1}\n' + big + b'\n{"a":2}\n{"a":3}\n'
    assert unparsed == 1


FRAGMENTS = [b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b" ", b"\n", b"\r", b"1", b"a", b"true", b"\\u12",
             b"\xc3\xa9", b"\xff", b"\xa0", b'{"Records":[', b'"messageType":"DATA_MESSAGE"', b'"logEvents":[',
             b'{"timestamp":1,"message":"m"}']


@pytest.mark.parametrize("mode", ["json", "cloudtrail", "cwl"])
def test_random_input_never_crashes_and_ignores_chunk_boundaries(mode: str) -> None:
    rng = random.Random(13)
    for _ in range(500):
        data = b"".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 30)))
        cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
        assert decode_in_pieces(mode, data, cuts) == decode_in_pieces(mode, data, []), data


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("cloudtrail.log", "cloudtrail"),
        ("cwl-subscription-via-firehose.json", "cwl"),
        ("firehose-no-delimiter.log", "json"),
        ("firehose-newline-delimited.log", "json"),
        ("alb.log", "none"),
        ("vpc-flow.log", "none"),
        ("cloudwatch-export.log", "none"),
    ],
)
def test_auto_sniffs_each_sample(name: str, mode: str) -> None:
    assert sniff(sample(name), final=True) == mode


def test_auto_does_not_take_bracketed_text_logs_for_json() -> None:
    assert sniff(b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied\n", final=True) == "none"
    assert sniff(b"[1,", final=False) is None
    assert sniff(b"[1," + b"2," * 4000, final=False) == "json"


# through a mount --------------------------------------------------------------------


def stat_size(path: Path) -> int:
    return int(run(["stat", "-c", "%s", str(path)]).stdout)


def stats(mount: Mount) -> dict[str, int]:
    return json.loads(run(["getfattr", "--only-values", "-n", "user.s3logfs.stats", str(mount.path)]).stdout)


def read_and_check_sizes(path: Path) -> bytes:
    """The file's bytes; once read, ``stat`` must give exactly that many."""
    data = run(["cat", str(path)]).stdout
    assert stat_size(path) == len(data)
    return data


def test_mount_cloudtrail_stream_and_file(s3: Any, bucket: str, mount_one: Any) -> None:
    prefix = "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/01/"
    first, second = cloudtrail_document(40), sample("cloudtrail.log")
    s3.put_object(Bucket=bucket, Key=f"{prefix}a_CloudTrail_20261101T0800Z.json.gz", Body=gzip.compress(first))
    s3.put_object(Bucket=bucket, Key=f"{prefix}b_CloudTrail_20261101T0805Z.json.gz", Body=gzip.compress(second))
    mount = mount_one("--records", "cloudtrail", prefix="AWSLogs/")
    expected = cloudtrail_lines(first) + cloudtrail_lines(second)
    assert read_and_check_sizes(mount.path / "stream") == expected
    per_key = mount.path / "123456789012/CloudTrail/eu-west-1/2026/11/01/a_CloudTrail_20261101T0800Z.json"
    assert read_and_check_sizes(per_key) == cloudtrail_lines(first)
    assert stats(mount)["records_unparsed"] == 0


def test_mount_json_splits_concatenated_values(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="firehose/2026/11/01/08/stream-1-2026-11-01-08-00-00", Body=b'{"a":1}{"a":2}{"a":3}')
    mount = mount_one("--records", "json")
    lines = read_and_check_sizes(mount.path / "stream").splitlines()
    assert lines == [b'{"a":1}', b'{"a":2}', b'{"a":3}']
    assert read_and_check_sizes(mount.path / "firehose/2026/11/01/08/stream-1-2026-11-01-08-00-00").count(b"\n") == 3


def test_mount_cwl_multi_member_drops_control_messages(s3: Any, bucket: str, mount_one: Any) -> None:
    stored = sample("cwl-subscription-via-firehose.gz") + gzip.compress(CONTROL_MESSAGE)
    s3.put_object(Bucket=bucket, Key="cwl/2026/11/01/08/delivery-1.gz", Body=stored)
    mount = mount_one("--records", "cwl")
    expected = cwl_lines(sample("cwl-subscription-via-firehose.json").decode())
    assert read_and_check_sizes(mount.path / "stream") == expected
    assert read_and_check_sizes(mount.path / "cwl/2026/11/01/08/delivery-1") == expected
    assert expected.count(b"\n") == 6


def test_mount_auto_on_a_mixed_prefix(s3: Any, bucket: str, mount_one: Any) -> None:
    trail = cloudtrail_document(5)
    alb = sample("alb.log")
    cwl_stored = sample("cwl-subscription-via-firehose.gz") + gzip.compress(CONTROL_MESSAGE)
    objects = {
        "mixed/1-cloudtrail.json.gz": (gzip.compress(trail), cloudtrail_lines(trail)),
        "mixed/2-cwl.gz": (cwl_stored, cwl_lines(sample("cwl-subscription-via-firehose.json").decode())),
        "mixed/3-firehose": (b'{"a":1}{"a":2}{"a":3}', b'{"a":1}\n{"a":2}\n{"a":3}\n'),
        "mixed/4-alb.log.gz": (gzip.compress(alb), alb if alb.endswith(b"\n") else alb + b"\n"),
        "mixed/5-app.log": (b"[2026-11-01 08:00:00] INFO started {\"a\":1}\n", b"[2026-11-01 08:00:00] INFO started {\"a\":1}\n"),
    }
    for key, (body, _) in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    mount = mount_one("--records", "auto", prefix="mixed/")
    assert read_and_check_sizes(mount.path / "stream") == b"".join(lines for _, lines in objects.values())
    assert read_and_check_sizes(mount.path / "3-firehose") == b'{"a":1}\n{"a":2}\n{"a":3}\n'
    assert stats(mount)["records_unparsed"] == 0


def test_mount_corrupt_record_passes_through_and_is_counted(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="f/delivery", Body=gzip.compress(b'{"a":1}{"a":oops}{"a":3}'))
    trail = b'{"Records":[{"a":1},{"a":nope},{"a":3}]}'
    s3.put_object(Bucket=bucket, Key="f/trail.json", Body=trail)
    mount = mount_one("--records", "auto", prefix="f/")
    data = read_and_check_sizes(mount.path / "stream")
    assert data == b'{"a":1}\n{"a":oops}\n{"a":3}\n{"a":1}\n{"a":nope}\n{"a":3}\n'
    assert stats(mount)["records_unparsed"] == 2


def test_mount_records_and_plain_caches_stay_apart(s3: Any, bucket: str, mount_factory: Any, tmp_path: Path) -> None:
    body = b'{"a":1}{"a":2}'
    s3.put_object(Bucket=bucket, Key="x/delivery", Body=body)
    cache = tmp_path / "shared-cache"
    plain = mount_factory(bucket, "x/", cache_dir=cache)
    assert read_and_check_sizes(plain.path / "stream") == body + b"\n"
    split = mount_factory(bucket, "x/", "--records", "json", cache_dir=cache)
    assert read_and_check_sizes(split.path / "stream") == b'{"a":1}\n{"a":2}\n'
    assert read_and_check_sizes(plain.path / "delivery") == body


def test_records_with_raw_is_a_one_line_error(bucket: str, tmp_path: Path, server: Any) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = run(
        s3logfs_command("mount", bucket, str(mountpoint), "--raw", "--records", "json",
                        "--endpoint-url", server.endpoint_url),
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.decode().strip().count("\n") == 0 and "--raw" in result.stderr.decode()


def test_mount_tail_is_right_at_once(s3: Any, bucket: str, mount_one: Any) -> None:
    """The last objects are decoded before ``stream`` answers: ``tail -n`` needs no earlier read.

    The objects are large enough that ``tail`` reads only the stream's last block, which the
    settled objects cover, while the estimates of the earlier ones are still off.
    """
    expected = []
    for number in range(30):
        values = [{"n": number, "i": i, "pad": "x" * 40} for i in range(80)]
        body = b"".join(compact_line(value)[:-1] for value in values)  # no delimiter: the lines outgrow any probe
        key = f"fh/2026/11/01/{number:02d}/delivery.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if number % 2 else body)
        expected.extend(compact_line(value) for value in values)
    mount = mount_one("--records", "json")
    assert run(["tail", "-n", "4", str(mount.path / "stream")]).stdout == b"".join(expected[-4:])
    assert read_and_check_sizes(mount.path / "stream") == b"".join(expected)


def test_cache_lookup_finds_each_modes_lines(s3: Any, bucket: str, mount_one: Any, server: Any) -> None:
    s3.put_object(Bucket=bucket, Key="d/delivery", Body=b'{"a":1}{"a":2}')
    mount = mount_one("--records", "json", prefix="d/")
    read_and_check_sizes(mount.path / "delivery")

    def lookup(*extra: str) -> str:
        command = s3logfs_command("cache", "lookup", f"{bucket}/d/", "--endpoint-url", server.endpoint_url,
                                  "--cache-dir", str(mount.cache_dir), *extra)
        return run(command).stdout.decode()

    found = lookup("--records", "json").split("=> ")[1].strip()
    assert Path(found).read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert "NOT IN CACHE" in lookup()
