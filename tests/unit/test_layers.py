"""The layers stay layered: the engine imports no front end, and the public API is what ``__all__`` says."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import s3logfs
import s3logfs.handlers

BLOCKED = ("mfusepy", "fuse", "s3logfs.fs", "s3logfs.cli", "s3logfs.cat", "s3logfs.logstream", "s3logfs.config",
           "s3logfs.devtools", "s3logfs.handlers")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_every_engine_module_imports_with_the_front_ends_and_fuse_blocked() -> None:
    result = _run(f"""
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == blocked or name.startswith(blocked + ".") for blocked in {BLOCKED!r}):
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import s3logfs.engine
        names = [info.name for info in pkgutil.walk_packages(s3logfs.engine.__path__, "s3logfs.engine.")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
    """)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 15  # every module of the engine was walked, not an empty package


def test_the_block_itself_works() -> None:
    """The positive control: the same guard refuses a front end, so the test above can fail."""
    result = _run(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == blocked or name.startswith(blocked + ".") for blocked in {BLOCKED!r}):
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import s3logfs.fs.view
    """)
    assert result.returncode != 0 and "blocked: s3logfs.fs" in result.stderr


def test_the_view_imports_without_the_fuse_binding() -> None:
    result = _run("""
        import sys
        import s3logfs.fs.view, s3logfs.fs.daemon, s3logfs.cat, s3logfs.logstream
        assert "mfusepy" not in sys.modules, sorted(m for m in sys.modules if "fuse" in m)
    """)
    assert result.returncode == 0, result.stderr


def test_the_public_api_is_what_all_says() -> None:
    assert sorted(s3logfs.__all__) == sorted([
        "BucketNotFound", "CodecError", "CredentialsError", "LogStream", "ObjectChanged", "ObjectNotFound",
        "S3LogFSError", "UsageError", "__version__",
    ])
    assert sorted(s3logfs.handlers.__all__) == ["CloudWatchHandler", "FirehoseHandler", "HandlerCounters", "S3Handler"]
    for package in (s3logfs, s3logfs.handlers):
        for name in package.__all__:
            assert getattr(package, name) is not None, name


def test_importing_the_handlers_stays_light() -> None:
    result = _run("""
        import sys, threading
        import s3logfs.handlers
        heavy = [name for name in sys.modules if name.startswith(("s3logfs.engine", "s3logfs.fs", "boto3", "botocore",
                                                                   "mfusepy"))]
        assert not heavy, heavy
        assert threading.active_count() == 1
    """)
    assert result.returncode == 0, result.stderr
