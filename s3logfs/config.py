"""Options: the config file and the typed option records built from it and the CLI.

Precedence runs command line, then config file, then defaults. The config file is INI
in s3tail's ``~/.s3tailrc`` layout, found as :func:`find_config_file` says: an
``[options]`` section whose keys are the long option names (``cache_hours`` or
``cache-hours``, and s3tail's ``cache_path``), and a ``[bookmarks]`` section (see
:mod:`s3logfs.engine.bookmarks`).
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import validation
from .engine.options import SourceOptions
from .engine.records import MODES, NONE
from .errors import UsageError

if TYPE_CHECKING:  # the S3 layer imports botocore: only the commands that reach S3 load it
    from .engine.s3 import S3Config
    from .engine.window import Window

S3TAIL_OPTION_NAMES = {"cache_path": "cache_dir"}
"""s3tail's option names that s3logfs spells differently."""
DEFAULT_TIMEOUT = 30.0
"""``--timeout``: seconds without an answer or a byte before a request or a download fails."""
CONNECT_TIMEOUT = 5.0
"""The longest a connection takes to open: ``--timeout`` when that is shorter."""


def config_file_candidates() -> list[Path]:
    """Where the config file is looked for, in order (README, "Options").

    ``~/.s3logfsrc`` is where development builds kept it; ``~/.s3tailrc`` is s3tail's, read as it
    is, so an s3tail user's options and bookmarks work with no step.
    """
    xdg = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return [
        Path(xdg).expanduser() / "s3logfs" / "config.ini",
        Path("~/.s3logfsrc").expanduser(),
        Path("~/.s3tailrc").expanduser(),
    ]


def find_config_file(explicit: Path | None) -> Path:
    """``-c FILE`` if given, else the first candidate that exists, else the XDG path (created on demand)."""
    if explicit is not None:
        return explicit.expanduser()
    candidates = config_file_candidates()
    return next((path for path in candidates if path.exists()), candidates[0])


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"1.5GiB"`` or a byte count, as bytes."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"not a size: {text!r} (try 500M or 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def read_config_file(path: Path | None) -> configparser.ConfigParser:
    """The parsed config file; an absent file is an empty config (bookmarks will create it)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # bookmark names keep their case
    target = find_config_file(path)
    if target.exists():
        try:
            parser.read(target, encoding="utf-8")
        except configparser.Error as error:
            raise UsageError(f"cannot read config file {target}{_where(error)}") from error
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read config file {target}: {getattr(error, 'strerror', None) or error}") from error
    return parser


def _where(error: configparser.Error) -> str:
    """Where in the file a configparser error is, and what, on one line."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f", line {error.lineno}: a setting before any [section] header: {str(error.line).strip()!r}"
    if isinstance(error, configparser.ParsingError) and error.errors:
        line_number, shown = error.errors[0]  # the line as repr() shows it
        return f", line {line_number}: not a 'name = value' line: {shown.strip()}"
    if isinstance(error, configparser.DuplicateOptionError):
        return f", line {error.lineno}: {error.option!r} is set twice in [{error.section}]"
    if isinstance(error, configparser.DuplicateSectionError):
        return f", line {error.lineno}: the section [{error.section}] appears twice"
    number = getattr(error, "lineno", None)
    reason = str(error).splitlines()[0]
    return f", line {number}: {reason}" if number else f": {reason}"


def file_options(parser: configparser.ConfigParser) -> dict[str, str]:
    """The ``[options]`` section, with keys normalised to underscores."""
    if not parser.has_section("options"):
        return {}
    options = {}
    for key, value in parser.items("options"):
        name = key.replace("-", "_").lower()
        options[S3TAIL_OPTION_NAMES.get(name, name)] = value
    return options


@dataclass(frozen=True)
class CommonOptions:
    """Options every command takes."""

    s3: S3Config
    cache_dir: Path
    cache_hours: float
    cache_max_size: int | None
    log_level: str
    log_file: Path | None
    config_file: Path


@dataclass(frozen=True)
class MountOptions:
    """Options of ``s3logfs mount``."""

    common: CommonOptions
    source: SourceOptions
    mountpoint: Path
    foreground: bool = False
    allow_other: bool = False
    writable_bookmarks: bool = False
    """Mount read-write so that touch, rm and setfattr manage bookmarks; every other write still fails."""


@dataclass(frozen=True)
class CatOptions:
    """Options of ``s3logfs cat``."""

    common: CommonOptions
    source: SourceOptions
    follow: bool = False
    bookmark: str | None = None
    """``-b``: a bookmark name, ``KEY:LINE``, ``KEY@BYTE`` or a stream offset."""
    progress: bool = False


class Settings:
    """Looks an option up on the command line, then in the config file, then a default."""

    def __init__(self, cli: Mapping[str, Any], config: Mapping[str, str]) -> None:
        self._cli = cli
        self._config = config

    def get(self, name: str, default: Any = None, kind: type = str) -> Any:
        value = self._cli.get(name)
        if value is not None:
            return value
        text = self._config.get(name)
        if text is None:
            return default
        try:
            if kind is bool:
                return text.strip().lower() in ("1", "true", "yes", "on")
            return kind(text)
        except ValueError as error:
            raise UsageError(f"bad value for {name} in the config file: {text!r}") from error


def s3_config(region: str | None = None, profile: str | None = None, endpoint_url: str | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> S3Config:
    """How to reach S3, ``timeout`` (``--timeout``) checked and spread over botocore's timeouts."""
    from .engine.s3 import S3Config

    timeout = validation.seconds("timeout", timeout, validation.MIN_TIMEOUT)
    return S3Config(region=region, profile=profile, endpoint_url=endpoint_url,
                    connect_timeout=min(timeout, CONNECT_TIMEOUT), read_timeout=timeout, timeout=timeout)


def common_options(settings: Settings, config_file: Path | None) -> CommonOptions:
    from .engine.cache import default_cache_dir

    max_size = settings.get("cache_max_size")
    log_file = settings.get("log_file")
    s3 = s3_config(
        region=settings.get("region"),
        profile=settings.get("profile"),
        endpoint_url=settings.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL") or None,
        timeout=settings.get("timeout", DEFAULT_TIMEOUT, float),
    )
    return CommonOptions(
        s3=s3,
        cache_dir=Path(settings.get("cache_dir") or default_cache_dir()).expanduser(),
        cache_hours=validation.hours("cache_hours", settings.get("cache_hours", 24.0, float)),
        cache_max_size=None if max_size is None else validation.size(
            "cache_max_size", parse_size(max_size) if isinstance(max_size, str) else max_size),
        log_level=str(settings.get("log_level", "WARNING")).upper(),
        log_file=Path(log_file).expanduser() if log_file else None,
        config_file=find_config_file(config_file),
    )


def source_options(settings: Settings, common: CommonOptions, bucket: str, prefix: str, window: Window | None,
                   raw_allowed: bool = False) -> SourceOptions:
    """The one :class:`SourceOptions` of a command or of ``LogStream``, every value checked.

    ``raw_allowed``: only the mount shows stored bytes (``--raw``).
    """
    raw = raw_allowed and bool(settings.get("raw", False, bool))
    return SourceOptions(
        bucket=bucket,
        prefix=prefix,
        s3=common.s3,
        cache_dir=common.cache_dir,
        bookmarks_file=common.config_file,
        cache_hours=common.cache_hours,
        cache_max_size=common.cache_max_size,
        poll_interval=validation.seconds("poll_interval", settings.get("poll_interval", 10.0, float),
                                         validation.MIN_POLL_INTERVAL, off=True),
        prefetch=validation.count("prefetch", settings.get("prefetch", 16, int), 0, validation.MAX_PREFETCH),
        raw=raw,
        records=records_mode(settings, raw),
        window=window,
        skip_errors=bool(settings.get("skip_errors", False, bool)),
    )


def records_mode(settings: Settings, raw: bool = False) -> str:
    """The ``--records`` mode from the command line or the config file, checked."""
    mode = str(settings.get("records", NONE)).strip().lower()
    if mode not in MODES:
        raise UsageError(f"bad value for records: {mode!r} (expected one of {', '.join(MODES)})")
    if raw and mode != NONE:
        raise UsageError("--records cannot go with --raw, which shows the stored bytes")
    return mode


def setup_logging(level: str, log_file: Path | None) -> None:
    """Log to ``log_file`` or stderr, through :class:`~s3logfs.redaction.RedactingFilter`.

    botocore's own lines (whole requests, signatures) come only at DEBUG, and redacted like
    every other line; libfuse's binding stays at WARNING.
    """
    from .redaction import RedactingFilter

    handler: logging.Handler
    if log_file is not None:
        if not log_file.parent.is_dir():  # made by no one but the user: a typo must not create directories
            raise UsageError(f"cannot log to {log_file}: the directory {log_file.parent} does not exist")
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot log to {log_file}: {error.strerror}") from error
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level)
    except ValueError as error:
        raise UsageError(f"unknown log level: {level}") from error
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(root.level if root.level <= logging.DEBUG else max(logging.WARNING, root.level))
    for noisy in ("mfusepy", "fuse"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
