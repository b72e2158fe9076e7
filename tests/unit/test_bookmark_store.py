"""The bookmark store without a mount: values round-trip, edits keep every other line, links stay links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3logfs.engine.bookmarks import Bookmark, BookmarkStore, _edit_section
from s3logfs.engine.stats import Stats


@pytest.mark.parametrize("key", ["plain/key.log", "with space/and%percent", "colon:3@7", "", "ünï/cödé", "x@5:2"])
@pytest.mark.parametrize("form", ["byte", "line"])
def test_stored_values_round_trip(key: str, form: str) -> None:
    bookmark = Bookmark(source="s3://b/p re fix", key=key, **({"byte": 12} if form == "byte" else {"line": 3}))
    text = bookmark.format()
    assert "\n" not in text and text == text.strip()
    assert Bookmark.parse(text) == bookmark


def test_editing_keeps_every_other_line() -> None:
    text = "[options]\nregion = x  # kept\n\n[bookmarks]\n# a comment\na = k:1\nb: k:2\n  continued\n\n[other]\nz = 1"
    assert _edit_section(text, "a", "k:5") == text.replace("a = k:1", "a = k:5")
    assert _edit_section(text, "b", None) == text.replace("b: k:2\n  continued\n", "")
    assert _edit_section(text, "c", "k:9") == text.replace("b: k:2\n  continued\n", "b: k:2\n  continued\nc = k:9\n")
    assert _edit_section("[options]\nx = 1", "n", "k:1") == "[options]\nx = 1\n\n[bookmarks]\nn = k:1\n"


def test_a_value_the_store_does_not_understand_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    path.write_text("[bookmarks]\nodd = something else\n")
    store = BookmarkStore(path)
    assert store.all() == {}
    with pytest.raises(Exception, match="does not understand"):
        store.set("odd", Bookmark(key="k", line=1))
    assert path.read_text() == "[bookmarks]\nodd = something else\n"


def test_a_symlinked_config_file_stays_a_symlink(tmp_path: Path) -> None:
    """Dotfile managers keep the config file elsewhere: the link stays, its target is updated."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "s3logfs.ini").write_text("[options]\nregion = eu-west-1\n")
    (dotfiles / "s3logfs.ini").chmod(0o640)
    link = tmp_path / "config.ini"
    link.symlink_to(dotfiles / "s3logfs.ini")
    BookmarkStore(link).set("b", Bookmark(source="s3://b/p", key="k", byte=3))
    assert link.is_symlink()
    assert (dotfiles / "s3logfs.ini").read_text() == "[options]\nregion = eu-west-1\n\n[bookmarks]\nb = s3://b/p k@3\n"
    assert (dotfiles / "s3logfs.ini").stat().st_mode & 0o777 == 0o640


def test_a_hard_linked_config_file_is_rewritten_in_place(tmp_path: Path) -> None:
    original = tmp_path / "config.ini"
    original.write_text("[bookmarks]\nb = k:1\n")
    twin = tmp_path / "twin.ini"
    os.link(original, twin)
    BookmarkStore(original).set("b", Bookmark(key="k", line=2))
    assert twin.read_text() == original.read_text() == "[bookmarks]\nb = k:2\n"


def test_the_last_of_repeated_names_is_the_one_moved(tmp_path: Path) -> None:
    """configparser lets the last line win, so that is the line a move edits."""
    path = tmp_path / "config.ini"
    path.write_text("[bookmarks]\nb = k:1\n[other]\nx = 1\n[bookmarks]\nb = k:5\n")
    store = BookmarkStore(path)
    assert store.get("b") == Bookmark(key="k", line=5)
    store.set("b", Bookmark(key="k", line=9))
    assert store.get("b") == Bookmark(key="k", line=9)
    assert path.read_text() == "[bookmarks]\nb = k:1\n[other]\nx = 1\n[bookmarks]\nb = k:9\n"


def test_a_bare_colon_line_bookmark_names_no_source() -> None:
    assert not Bookmark.parse(":4").applies_to("s3://any/", "")
    assert Bookmark.parse("logs/a:4").applies_to("s3://any/logs/", "logs/")
    assert not Bookmark.parse("logs/a:4").applies_to("s3://any/other/", "other/")


def test_a_cursor_place_survives_a_correction_before_it(tmp_path: Path) -> None:
    """The place a cursor read to is counted through the spans it read, not as an offset.

    A trailer probe that corrects an estimate before the cursor moves every offset after it;
    the bookmark must still name the key and byte the reader saw.
    """
    from s3logfs.engine.bookmarks import StreamBookmarks
    from s3logfs.engine.index import Span, StreamIndex
    from s3logfs.engine.stream import ReadPosition, StreamReader

    index = StreamIndex(None)
    index.append([Span("p/a.gz", "e1", 0, False), Span("p/b", "e2", 40, True)])
    reader = StreamReader(None, index, Stats(), 0)  # type: ignore[arg-type]  # place_before reads the index only
    bookmarks = StreamBookmarks(BookmarkStore(tmp_path / "c.ini"), "s3://x/p/", "p/", None, index,  # type: ignore[arg-type]
                                lambda position: index.spans[position].length)
    cursor = ReadPosition(next_offset=30, position=1, inner=30)  # read b from byte 10 to byte 30
    index.correct(0, 50)  # a.gz's trailer lands: every offset after it moves by 50
    assert bookmarks.bookmark_for(*reader.place_before(cursor, 5)) == Bookmark(source="s3://x/p/", key="p/b", byte=25)
    assert bookmarks.bookmark_for(*reader.place_before(ReadPosition(position=2, inner=0), 0)) == \
        Bookmark(source="s3://x/p/", key="p/b", byte=40)  # the stream's end: b's end, not "after b"
    reader.close()
