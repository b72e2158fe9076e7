"""The command line loads only what a command uses (README, "Start-up"): the mechanism, not a time.

``--version``, ``--help`` and ``bookmarks`` never import botocore, boto3 or the FUSE binding;
``cat`` imports botocore (it lists the prefix) but neither boto3, the FUSE binding nor the
logging handlers. Each command runs in a fresh interpreter through :func:`s3logfs.cli.main`,
which then writes the names in ``sys.modules`` to a file. No test here measures a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s3logfs.devtools.localserver import LocalS3Server

from helpers import run

_RUN_AND_LIST_MODULES = textwrap.dedent("""
    import json, sys
    from s3logfs.cli import main
    try:
        status = main(sys.argv[2:])
    except SystemExit as exit:  # --version and --help end in argparse's exit
        status = exit.code
    with open(sys.argv[1], "w") as out:
        json.dump({"status": status, "modules": sorted(sys.modules)}, out)
""")

NEVER = ("boto3", "s3transfer", "mfusepy", "fuse", "s3logfs.fs", "s3logfs.handlers", "s3logfs.devtools")
"""Imported by no command below: the SDK's resource layer, the FUSE binding and front end, the handlers."""
NOT_WITHOUT_S3 = ("botocore", "urllib3", "s3logfs.engine.s3", "s3logfs.engine.catalog", "s3logfs.engine.stream")
"""The S3 layer: only for a command that talks to S3."""


def _modules_after(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    report = tmp_path / "modules.json"
    result = run([sys.executable, "-c", _RUN_AND_LIST_MODULES, str(report), *args])
    seen = json.loads(report.read_text())
    assert seen["status"] in (0, None), result.stderr.decode()
    return result, seen["modules"]


def _loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [name for name in modules if any(name == package or name.startswith(package + ".") for package in packages)]


@pytest.mark.parametrize(("args", "output"), [
    (["--version"], b"s3logfs "),
    (["--help"], b"usage: s3logfs"),
    (["cat", "--help"], b"usage: s3logfs cat"),
    (["bookmarks", "list"], b"nightly\ts3://b/logs/\t"),
    (["bookmarks"], b"nightly\ts3://b/logs/\t"),
    (["bookmarks", "set", "mine", "s3://b/logs/", "logs/k:0"], b""),
])
def test_commands_that_never_reach_s3_import_no_sdk_and_no_fuse(tmp_path: Path, args: list[str], output: bytes) -> None:
    config = tmp_path / "config.ini"  # options in it: the check for unknown ones runs too
    config.write_text("[options]\ncache_hours = 2\n\n[bookmarks]\nnightly = s3://b/logs/ logs/k@5\n")
    result, modules = _modules_after(tmp_path, *args, *(["-c", str(config)] if args[0] == "bookmarks" else []))
    assert not _loaded(modules, NEVER + NOT_WITHOUT_S3)
    assert result.stdout.startswith(output)  # the command did its work
    assert "s3logfs.cli" in modules  # the positive control: the list is the command's


def test_cat_of_a_cached_prefix_imports_botocore_but_no_boto3_and_no_fuse(
    tmp_path: Path, logs: bytes, server: LocalS3Server, bucket: str
) -> None:
    command = ["cat", f"{bucket}/logs/", "--endpoint-url", server.endpoint_url, "--cache-dir", str(tmp_path / "cache"),
               "-c", str(tmp_path / "config.ini")]
    _modules_after(tmp_path, *command)  # fills the cache
    server.middleware.reset()
    result, modules = _modules_after(tmp_path, *command)
    assert result.stdout == logs
    assert [request.kind for request in server.counters.requests] == ["list"]  # cached: a listing, no GET
    assert "botocore" in modules and "s3logfs.engine.s3" in modules  # cat lists the prefix: it needs botocore
    assert not _loaded(modules, NEVER)


def test_the_engine_package_loads_its_layers_on_first_use() -> None:
    """``import s3logfs.engine`` (which any engine module imports first) stays light; the names it
    offered are all still there, each loaded when asked for."""
    code = textwrap.dedent("""
        import sys
        import s3logfs.engine as engine
        import s3logfs.engine.bookmarks, s3logfs.engine.cache, s3logfs.engine.options, s3logfs.config
        light = sorted(name for name in sys.modules if name.startswith(("botocore", "s3logfs.engine.s3")))
        assert not light, light
        from s3logfs.engine import StreamCursor, S3Client, build
        assert "botocore" in sys.modules and StreamCursor.__module__ == "s3logfs.engine.cursor"
        for name in ("BookmarkStore", "StreamBookmarks", "DiskCache", "check_cache_dir", "Catalog", "ObjectFetcher",
                     "StreamIndex", "KeyStore", "Stats", "StreamReader", "SourceOptions", "Engine"):
            assert getattr(engine, name) is not None, name
    """)
    result = run([sys.executable, "-c", code], check=False, text=True)
    assert result.returncode == 0, result.stderr


def test_the_public_api_still_imports(tmp_path: Path) -> None:
    """``LogStream`` (loaded on first use) and the handlers, as the README shows them."""
    code = "from s3logfs import LogStream; from s3logfs.handlers import S3Handler; print(LogStream.__name__, S3Handler.__name__)"
    result = run([sys.executable, "-c", code], text=True)
    assert result.stdout.split() == ["LogStream", "S3Handler"]
