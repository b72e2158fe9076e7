"""``cat --progress`` estimates the total from the stored bytes left and the decode ratio seen so far."""

from __future__ import annotations

from types import SimpleNamespace

from s3logfs.cat import _Progress
from s3logfs.engine.bookmarks import Place


def _progress(stored: list[int]) -> tuple[_Progress, SimpleNamespace]:
    keys = [f"k{n}" for n in range(len(stored))]
    source = SimpleNamespace(
        reader=SimpleNamespace(index=_Spans(keys)),
        catalog=SimpleNamespace(by_key={key: SimpleNamespace(info=SimpleNamespace(size=size))
                                        for key, size in zip(keys, stored)}),
    )
    cursor = SimpleNamespace(start=Place(0, 0, 0), offset=0, read_position=SimpleNamespace(position=0))
    progress = _Progress(source, cursor)  # type: ignore[arg-type]
    progress.stop()  # no live line: the test asks for lines itself
    return progress, cursor


class _Spans:
    def __init__(self, keys: list[str]) -> None:
        self.spans = [SimpleNamespace(key=key) for key in keys]

    def __len__(self) -> int:
        return len(self.spans)


def test_the_line_says_estimating_until_it_can_and_then_a_total_from_the_decode_ratio() -> None:
    progress, cursor = _progress([1_000_000] * 10)  # ten objects of 1 MB stored, each 5 MB decoded
    assert progress.line().endswith("estimating")
    cursor.read_position.position, cursor.offset = 4, 20_000_000  # four objects read
    assert progress.line().endswith("estimating")  # not yet two seconds in
    progress._began -= 10  # ten seconds in: 2 MB/s
    line = progress.line()
    assert line == "4/10 objects, 20.0 MB, 2.0 MB/s, about 50 MB in all, 15 s left", line
