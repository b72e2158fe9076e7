"""The demo's data: every object it makes as the clock runs lies in the past, in every log format."""

from __future__ import annotations

import gzip
import json
import random
import re
from datetime import UTC, datetime

from s3logfs.devtools.demo_data import next_live_object


def test_live_demo_lines_never_run_ahead_of_the_clock() -> None:
    """Every timestamp in a live demo object lies before the moment it was made, for each format."""
    rng = random.Random(7)
    for seq in range(40):
        now = datetime.now(UTC)
        obj = next_live_object(rng, now, seq)
        text = obj.content.decode()
        stamps = [datetime.strptime(m, "%d/%b/%Y:%H:%M:%S %z") for m in re.findall(r"\[(\d\d/\w{3}/\d{4}:[\d:]+ [+-]\d{4})\]", text)]
        stamps += [datetime.fromisoformat(m.replace("Z", "+00:00")) for m in re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+Z", text)]
        stamps += [datetime.strptime(f"{d} {t}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                   for d, t in re.findall(r"^(\d{4}-\d\d-\d\d)\t([\d:]{8})\t", text, re.MULTILINE)]
        if obj.body[:2] == b"\x1f\x8b" and b"logEvents" in gzip.decompress(obj.body):
            decoder, rest = json.JSONDecoder(), text
            while rest.strip():
                envelope, end = decoder.raw_decode(rest.strip())
                stamps += [datetime.fromtimestamp(e["timestamp"] / 1000, UTC) for e in envelope["logEvents"]]
                rest = rest.strip()[end:]
        assert stamps, obj.key
        assert max(stamps) <= now, (obj.key, max(stamps), now)
