"""``--records`` through real mounts: ``stream`` and per-key files give one line per record, sized exactly.

The expected lines are built from ``json`` and the samples in ``tests/data`` directly (by
:mod:`helpers`), never through :mod:`s3logfs.engine.records`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from helpers import (
    CONTROL_MESSAGE,
    cloudtrail_document,
    cloudtrail_lines,
    compact_line,
    cwl_lines,
    mount_stats,
    run,
    s3logfs_command,
    sample,
    stat_size,
)


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
    assert mount_stats(mount)["records_unparsed"] == 0


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
    assert mount_stats(mount)["records_unparsed"] == 0


def test_mount_corrupt_record_passes_through_and_is_counted(s3: Any, bucket: str, mount_one: Any) -> None:
    s3.put_object(Bucket=bucket, Key="f/delivery", Body=gzip.compress(b'{"a":1}{"a":oops}{"a":3}'))
    trail = b'{"Records":[{"a":1},{"a":nope},{"a":3}]}'
    s3.put_object(Bucket=bucket, Key="f/trail.json", Body=trail)
    mount = mount_one("--records", "auto", prefix="f/")
    data = read_and_check_sizes(mount.path / "stream")
    assert data == b'{"a":1}\n{"a":oops}\n{"a":3}\n{"a":1}\n{"a":nope}\n{"a":3}\n'
    assert mount_stats(mount)["records_unparsed"] == 2


def test_mount_records_and_plain_caches_stay_apart(s3: Any, bucket: str, mount_factory: Any, tmp_path: Path) -> None:
    body = b'{"a":1}{"a":2}'
    s3.put_object(Bucket=bucket, Key="x/delivery", Body=body)
    cache = tmp_path / "shared-cache"
    plain = mount_factory(bucket, "x/", cache_dir=cache)
    assert read_and_check_sizes(plain.path / "stream") == body + b"\n"
    split = mount_factory(bucket, "x/", "--records", "json", cache_dir=cache)
    assert read_and_check_sizes(split.path / "stream") == b'{"a":1}\n{"a":2}\n'
    assert read_and_check_sizes(plain.path / "delivery") == body


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
