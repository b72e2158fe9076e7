"""``--records``: the splitters give one line per record, whatever the chunking.

The expected lines are built from ``json`` and the samples in ``tests/data`` directly (by
:mod:`helpers`), never through :mod:`s3logfs.engine.records`, so a wrong splitter cannot agree
with itself.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random

import pytest

from s3logfs.engine import records
from s3logfs.engine.codecs import object_decoder
from s3logfs.engine.records import record_decoder, sniff

from helpers import CONTROL_MESSAGE, cloudtrail_document, cloudtrail_lines, cwl_lines, sample


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
