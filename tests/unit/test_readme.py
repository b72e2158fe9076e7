"""The README stays true: its options tables match the parser, its bookmarks example parses."""

from __future__ import annotations

import argparse
import re

from s3logfs.cli import _common_parser, build_parser

from helpers import README

TEXT = README.read_text()
FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z-]*)")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def own_flags(parser: argparse.ArgumentParser) -> set[str]:
    common = {flag for action in _common_parser()._actions for flag in action.option_strings}
    flags = {flag for action in parser._actions for flag in action.option_strings}
    return flags - common - {"-h", "--help"}


def table_rows(heading: str) -> dict[str, str]:
    """The ``| `command` | cell |`` rows of the table after ``heading``."""
    section = TEXT[TEXT.index(heading):]
    rows = {}
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_options_table_matches_each_command() -> None:
    rows = table_rows("Each command's own options:")
    commands = subcommands(build_parser())
    documented = set(rows) - {"cache lookup", "cache clear"} | {"cache"}
    assert documented == set(commands)
    for name, cell in rows.items():
        words = name.split()
        parser = commands[words[0]]
        if len(words) > 1:
            parser = subcommands(parser)[words[1]]
        if name == "bookmarks":
            actions = set(subcommands(parser))
            assert actions == {word.strip("`").split()[0] for word in cell.split(", ")}, cell
            continue
        if name == "cache":
            continue
        assert set(FLAG.findall(cell)) == own_flags(parser) or (cell == "none" and not own_flags(parser)), name


def test_every_common_option_is_in_the_common_table() -> None:
    section = TEXT[TEXT.index("Every command but `umount` takes"):TEXT.index("Each command's own options:")]
    documented = set(FLAG.findall(section))
    parsed = {flag for action in _common_parser()._actions for flag in action.option_strings}
    assert parsed <= documented, parsed - documented
    umount = subcommands(build_parser())["umount"]
    assert not parsed & {flag for action in umount._actions for flag in action.option_strings}


def test_the_bookmarks_example_parses() -> None:
    from s3logfs.engine.bookmarks import _section_items

    example = TEXT.split("### Bookmarks", 1)[1].split("```ini\n", 1)[1].split("```", 1)[0]
    items = _section_items(example)
    assert set(items) == {"nightly", "triage", "from-s3tail"}
    from s3logfs.engine.bookmarks import Bookmark

    for value in items.values():
        Bookmark.parse(value)
