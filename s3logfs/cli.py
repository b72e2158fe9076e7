"""The ``s3logfs`` command line.

Every failure the user can cause ends as one line on stderr and a non-zero exit, never
a traceback. The commands only parse options and call the layers below.

Each command imports the layers it uses when it runs, not before: ``--version``, ``--help``
and ``bookmarks`` never load botocore (the S3 layer), ``cat`` never loads the FUSE binding,
and nothing here loads boto3 (README, "Start-up"; ``tests/unit/test_startup_imports.py``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import (
    __version__,
    _quiet_start,  # noqa: F401  # first: Ctrl-C while loading is no traceback
    validation,
)
from .config import (
    CatOptions,
    MountOptions,
    Settings,
    common_options,
    file_options,
    find_config_file,
    read_config_file,
    records_mode,
    setup_logging,
    source_options,
)
from .engine.records import MODES
from .errors import S3LogFSError, UsageError

if TYPE_CHECKING:
    from .engine.bookmarks import BookmarkStore
    from .engine.window import Window

log = logging.getLogger(__name__)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, its errors on one line like every other error (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"s3logfs: {message} (see {self.prog} --help)\n")


_CONFIG_HELP = "INI config file (default: the first of ~/.config/s3logfs/config.ini, ~/.s3logfsrc, ~/.s3tailrc)"


def _common_parser(suppress: bool = False, s3: bool = True, cache: bool = True,
                   config_help: str = _CONFIG_HELP) -> _OneLineParser:
    """The options commands share; ``s3`` and ``cache`` leave out those a command has no use for.

    ``suppress`` leaves unset ones out of the namespace, for a sub-action whose parent command
    takes them too (argparse would reset the parent's values).
    """
    common = _OneLineParser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    group = common.add_argument_group("common options")
    if s3:
        group.add_argument("--region", help="AWS region")
        group.add_argument("--profile", help="AWS profile name")
        group.add_argument("--endpoint-url", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL)")
    if cache:
        group.add_argument("--cache-dir", help="cache directory (default: ~/.cache/s3logfs)")
    if cache and s3:
        group.add_argument("--cache-hours", type=float,
                           help="drop cache entries unused this long (24); 0: a private cache, deleted at the end")
        group.add_argument("--cache-max-size", help="cache size limit, such as 2G (default: none)")
    if s3:
        group.add_argument("--timeout", type=float, metavar="S",
                           help="seconds a request or download may go without an answer or a byte, retries "
                           "included, before it fails (30)")
    group.add_argument("--log-level", help="DEBUG, INFO, WARNING (default) or ERROR")
    group.add_argument("--log-file", help="log to this file instead of stderr")
    group.add_argument("-c", "--config-file", help=config_help)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()
    parser = _OneLineParser(prog="s3logfs", description="Read AWS logs kept in S3 as local files.")
    parser.add_argument("--version", action="version", version=f"s3logfs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mount = commands.add_parser("mount", parents=[common], help="mount a bucket prefix read-only")
    mount.add_argument("source", metavar="[s3://]BUCKET[/PREFIX]")
    mount.add_argument("mountpoint", type=Path)
    mount.add_argument("-f", "--foreground", action="store_true", default=None, help="stay in the foreground")
    mount.add_argument("--poll-interval", type=float, help="seconds between listings of new keys; 0 = off (10)")
    mount.add_argument("--prefetch", type=int, help="objects read ahead in parallel (16)")
    mount.add_argument("--raw", action="store_true", default=None, help="show stored bytes under the original names")
    mount.add_argument("--allow-other", action="store_true", default=None, help="let other users see the mount")
    mount.add_argument("--writable-bookmarks", action="store_true", default=None,
                       help="mount read-write for bookmarks only: touch/rm cursor files, setfattr on stream "
                       "(default: a read-only mount; use s3logfs bookmarks)")
    mount.add_argument("--skip-errors", action="store_true", default=None,
                       help="leave an object that cannot be read (missing, corrupt, failing after every "
                       "retry) out of stream, logged and counted, instead of an I/O error")
    _add_records_option(mount)
    _add_window_options(mount)

    cat = commands.add_parser("cat", parents=[common], help="print the stream to stdout (s3tail's workflow, no FUSE)")
    cat.add_argument("source", metavar="[s3://]BUCKET[/PREFIX]")
    cat.add_argument("-b", "--bookmark", metavar="BOOKMARK",
                     help="start at a named bookmark (saved again at the end), KEY:LINE, KEY@BYTE or an offset")
    cat.add_argument("-f", "--follow", action="store_true", default=None, help="wait for new objects at the end")
    cat.add_argument("--poll-interval", type=float, help="seconds between listings of new keys with -f (10)")
    cat.add_argument("--prefetch", type=int, help="objects read ahead in parallel (16)")
    cat.add_argument("--progress", action="store_true", default=None,
                     help="a live progress line on stderr (only when stderr is a terminal)")
    cat.add_argument("--skip-errors", action="store_true", default=None,
                     help="leave out an object that cannot be read (counted, logged) instead of failing")
    _add_records_option(cat)
    _add_window_options(cat)

    config_only = _common_parser(s3=False, cache=False)
    bookmarks = commands.add_parser("bookmarks", parents=[config_only],
                                    help="list, show, set or remove named bookmarks")
    actions = bookmarks.add_subparsers(dest="bookmarks_command", metavar="ACTION")
    again = _common_parser(suppress=True, s3=False, cache=False)
    actions.add_parser("list", parents=[again], help="every bookmark: name, source and place (the default)")
    get = actions.add_parser("get", parents=[again], help="the stored value of one bookmark")
    get.add_argument("name")
    set_ = actions.add_parser("set", parents=[again], help="create or move a bookmark")
    set_.add_argument("name")
    set_.add_argument("source", metavar="SOURCE", help="[s3://]BUCKET[/PREFIX], or a mountpoint of s3logfs")
    set_.add_argument("place", nargs="?", default=":0",
                      help="KEY:LINE (line LINE+1 of the key after KEY) or KEY@BYTE (default: the start, ':0')")
    set_.add_argument("--force", action="store_true",
                      help="replace a bookmark of the same name that belongs to another source")
    remove = actions.add_parser("rm", parents=[again], help="remove a bookmark")
    remove.add_argument("name")

    umount = commands.add_parser("umount", help="unmount")
    umount.add_argument("mountpoint", type=Path)
    umount.add_argument("-z", "--lazy", action="store_true",
                        help="detach now, even while busy; the daemon exits when the last file closes")

    cache = commands.add_parser("cache", help="inspect or clear the disk cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    lookup = cache_commands.add_parser("lookup", parents=[common], help="print each key's cache path")
    lookup.add_argument("source", metavar="[s3://]BUCKET[/PREFIX]")
    _add_records_option(lookup)
    _add_window_options(lookup)
    cache_commands.add_parser("clear", parents=[_common_parser(s3=False)],
                              help="empty the cache, its --raw and --records parts included")

    demo_common = _common_parser(s3=False, cache=False, config_help="INI config file (default: none; the demo never reads yours)")
    demo = commands.add_parser("demo", parents=[demo_common], help="mount a local demo S3 server with sample logs")
    demo.add_argument("mountpoint", nargs="?", type=Path, help="where to mount (default: a temporary directory)")
    demo.add_argument("--interval", type=float, default=5.0, help="seconds between new demo objects (5)")
    return parser


def _settings(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    config_file = Path(args.config_file) if getattr(args, "config_file", None) else None
    config = file_options(read_config_file(config_file))
    unknown = set(config) - _option_names() if config else set()
    for name in sorted(unknown):
        _note(f"warning: unknown option {name!r} in [options] of {find_config_file(config_file)} (ignored)")
    return Settings(vars(args), config), config_file


@functools.cache
def _option_names() -> frozenset[str]:
    """Every long option any command takes, as the config file spells it (``cache_hours``).

    Built from a second parser, so only when a config file sets options, and once.
    """
    names: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            names.update(flag[2:].replace("-", "_") for flag in action.option_strings if flag.startswith("--"))
    return frozenset(names)


def _add_records_option(parser: argparse.ArgumentParser) -> None:
    """``--records MODE`` (README, "Options"), for every command that reads a prefix."""
    parser.add_argument(
        "--records",
        choices=MODES,
        help="one line per record: json (concatenated JSON values), cwl (CloudWatch Logs "
        "subscription envelopes), cloudtrail ({\"Records\":[...]}), auto (sniffed per object) "
        "or none (default: stored text)",
    )


def _add_window_options(parser: argparse.ArgumentParser) -> None:
    """``--since T`` and ``--until T`` (README, "Options"), for every command that reads a prefix."""
    group = parser.add_argument_group("time window (objects whose key time falls in it; UTC unless an offset is given)")
    group.add_argument("--since", metavar="T", help="from T: an age (90s, 15m, 2h, 3d, 1w, 1h30m), "
                       "an ISO 8601 date or date-time (2026-11-01, 2026-11-01T08:00Z), or now")
    group.add_argument("--until", metavar="T", help="up to T (exclusive), in the same forms")


def window_option(args: argparse.Namespace) -> Window | None:
    """The window of ``--since``/``--until``; a bad time is a one-line :class:`UsageError`."""
    from .engine.window import make_window

    return make_window(getattr(args, "since", None), getattr(args, "until", None))


def mount_options(args: argparse.Namespace) -> MountOptions:
    from .engine.options import parse_source

    settings, config_file = _settings(args)
    common = common_options(settings, config_file)
    bucket, prefix = parse_source(args.source)
    return MountOptions(
        common=common,
        source=source_options(settings, common, bucket, prefix, window_option(args), raw_allowed=True),
        mountpoint=args.mountpoint.expanduser().absolute(),
        foreground=bool(settings.get("foreground", False, bool)),
        allow_other=bool(settings.get("allow_other", False, bool)),
        writable_bookmarks=bool(settings.get("writable_bookmarks", False, bool)),
    )


def _cmd_mount(args: argparse.Namespace) -> int:
    from .fs.daemon import mount

    options = mount_options(args)
    setup_logging(options.common.log_level, options.common.log_file)
    return mount(options, note=_note)


def _note(message: str) -> None:
    """One line for the user on stderr that is not an error."""
    print(f"s3logfs: {message}", file=sys.stderr)


def _cmd_umount(args: argparse.Namespace) -> int:
    from .fs.host import unmount

    return unmount(args.mountpoint.expanduser().absolute(), lazy=args.lazy)


def _cmd_cache(args: argparse.Namespace) -> int:
    from .engine import cache_root
    from .engine.cache import DiskCache
    from .engine.options import parse_source
    from .engine.s3 import S3Client
    from .engine.window_listing import list_window

    settings, config_file = _settings(args)
    common = common_options(settings, config_file)
    setup_logging(common.log_level, common.log_file)
    if args.cache_command == "clear":
        return _clear_caches(common.cache_dir)
    bucket, prefix = parse_source(args.source)
    root = cache_root(common.cache_dir, raw=False, records=records_mode(settings))
    cache = DiskCache(root, common.cache_hours, common.cache_max_size)
    client = S3Client(bucket, common.s3)
    for info in list_window(client, prefix, window_option(args)):
        hit = cache.lookup(bucket, info.key, info.etag)
        print(f"{bucket}/{info.key}\n  => {hit.path if hit else 'NOT IN CACHE'}")
    return 0


def _clear_caches(cache_dir: Path) -> int:
    """``cache clear``: the cache and its ``--raw`` and ``--records`` subdirectories, each said."""
    from .engine.cache import DiskCache

    roots = [cache_dir, *sorted(path for path in (cache_dir / "raw", *cache_dir.glob("records-*")) if path.is_dir())]
    if not cache_dir.exists():
        print(f"no cache at {cache_dir}: nothing to remove")
        return 0
    for root in roots:
        print(f"removed {DiskCache(root).clear()} cache entries from {root}")
    return 0


def cat_options(args: argparse.Namespace) -> CatOptions:
    from .engine.options import parse_source

    settings, config_file = _settings(args)
    common = common_options(settings, config_file)
    bucket, prefix = parse_source(args.source)
    return CatOptions(
        common=common,
        source=source_options(settings, common, bucket, prefix, window_option(args)),
        follow=bool(args.follow),
        bookmark=args.bookmark,
        progress=bool(args.progress),
    )


def _cmd_cat(args: argparse.Namespace) -> int:
    from .cat import run_cat

    options = cat_options(args)
    setup_logging(options.common.log_level, options.common.log_file)
    return run_cat(options)


def _cmd_bookmarks(args: argparse.Namespace) -> int:
    from .engine.bookmarks import BookmarkStore

    config_file = _settings(args)[1]
    store = BookmarkStore(find_config_file(config_file))  # no S3 options: nothing here reaches S3
    actions = {"list": _bookmarks_list, "get": _bookmark_get, "set": _bookmark_set, "rm": _bookmark_rm}
    actions[args.bookmarks_command or "list"](store, args)
    return 0


def _bookmarks_list(store: BookmarkStore, args: argparse.Namespace) -> None:
    """Every bookmark, a line each; an entry s3logfs cannot read is shown as it is, never hidden."""
    bookmarks, unreadable = store.all(), store.unreadable()
    if not bookmarks and not unreadable:
        _note(f"no bookmarks in {store.path}")
    for name, bookmark in sorted(bookmarks.items()):
        print(f"{name}\t{bookmark.source or '(s3tail: any source naming the key)'}\t{bookmark.describe()}")
    for name, value in sorted(unreadable.items()):
        print(f"{name}\t(not a bookmark s3logfs can read; left as it is)\t{value}")


def _bookmark_get(store: BookmarkStore, args: argparse.Namespace) -> None:
    found = store.get(args.name)
    if found is None:
        raise UsageError(f"no bookmark named {args.name!r} in {store.path}")
    print(found.format())


def _bookmark_set(store: BookmarkStore, args: argparse.Namespace) -> None:
    """Create or move a bookmark; one that belongs to another source is refused unless ``--force``."""
    from .engine.bookmarks import Bookmark, BookmarkTaken
    from .engine.options import parse_source

    place = Bookmark.parse(args.place)
    if place.offset is not None:
        raise UsageError("an offset depends on one stream's order: give KEY:LINE or KEY@BYTE "
                         "(or setfattr on a mount's stream, with --writable-bookmarks)")
    source = _bookmark_source(args.source)
    wanted = Bookmark(source=source, key=place.key, byte=place.byte, line=place.line)
    prefix = parse_source(source)[1]

    def replace(current: Bookmark | None) -> Bookmark:
        if current is not None and not args.force and not current.applies_to(source, prefix):
            owner = current.source or "no source (an s3tail bookmark of another prefix)"
            raise BookmarkTaken(f"bookmark {args.name!r} belongs to {owner}; give --force to replace it")
        return wanted

    store.update(args.name, replace)


def _bookmark_rm(store: BookmarkStore, args: argparse.Namespace) -> None:
    if not store.remove(args.name):
        raise UsageError(f"no bookmark named {args.name!r} in {store.path}")


def _bookmark_source(text: str) -> str:
    """``s3://bucket/prefix`` from a source or from a mountpoint of s3logfs (its root's xattr)."""
    from .engine.options import parse_source

    path = Path(text).expanduser()
    if not text.startswith("s3://") and path.is_dir():
        try:
            return os.getxattr(path, "user.s3logfs.source").decode()
        except OSError as error:
            raise UsageError(f"{path} is not an s3logfs mount ({error.strerror})") from error
    bucket, prefix = parse_source(text)
    return f"s3://{bucket}/{prefix}"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .devtools.demo import run_demo

    explicit = Path(args.config_file) if args.config_file else None
    config = file_options(read_config_file(explicit)) if explicit else {}  # never the user's own file
    common = common_options(Settings(vars(args), config), explicit)
    setup_logging(common.log_level, common.log_file)
    return run_demo(args.mountpoint, validation.seconds("interval", args.interval, validation.MIN_POLL_INTERVAL), common)


_COMMANDS: dict[str, Any] = {
    "mount": _cmd_mount,
    "umount": _cmd_umount,
    "cache": _cmd_cache,
    "cat": _cmd_cat,
    "bookmarks": _cmd_bookmarks,
    "demo": _cmd_demo,
}


_TAKES_DASH_VALUE = ("--since", "--until")
"""Options whose value may start with ``-`` (``--since -5m``): argparse would take it for an option."""


def _attach_dash_values(argv: list[str]) -> list[str]:
    """``--since -5m`` as ``--since=-5m``, which argparse reads as the value it is."""
    joined: list[str] = []
    index = 0
    while index < len(argv):
        if argv[index] in _TAKES_DASH_VALUE and index + 1 < len(argv) and argv[index + 1][:1] == "-" \
                and argv[index + 1][1:2].isdigit():
            joined.append(f"{argv[index]}={argv[index + 1]}")
            index += 2
            continue
        joined.append(argv[index])
        index += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # loaded: Ctrl-C is KeyboardInterrupt again
    argv = _attach_dash_values(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except S3LogFSError as error:
        print(f"s3logfs: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
