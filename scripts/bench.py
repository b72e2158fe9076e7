#!/usr/bin/env python3
"""Benchmark s3logfs against the usual ways of reading S3 logs, in one run (README, "Performance").

    scripts/bench.py                      # every scenario, at 0 and 30 ms per request
    scripts/bench.py --latency-ms 30 --only cold_small,tail_n --tools s3logfs,s3tail
    scripts/bench.py --ab 140240b --only cold_gzip,cached_reread,ls_l --repeat 5

``--ab REV`` measures s3logfs at git revision REV against the working tree: each chosen
cell runs once per round for each side, alternating which side goes first, for
``--repeat`` rounds, and the table gives each side's median and their ratio. It is how a
change to the read path shows it costs nothing (a single run here moves by 20-40%).

It installs what it needs (s3fs, rclone and awscli from Debian, the ``bench`` extra into
``.venv``), starts a local S3 server (moto behind a middleware that adds latency and
counts requests) in its own process, uploads generated AWS-format datasets, and then,
for every scenario and latency, runs each tool on the same objects:

* ``s3logfs``: mounted, reading ``stream`` (or listing the mount);
* ``s3fs`` and ``rclone``: mounted, ``cat``/``zcat`` over the per-key files;
* ``s3tail``: one sequential boto3 reader, s3tail's algorithm (list, GET each key in
  order, gunzip);
* ``awscli``: ``aws s3 cp --recursive`` into a directory, then ``cat``/``zcat``.

Every output is checked (byte counts, the last lines, the number of entries), so a
fast wrong answer cannot win. It prints a table of median wall times with each
peer's ratio to s3logfs, and writes every measurement to a JSON file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("S3LOGFS_VENV", ROOT / ".venv"))
APT_PACKAGES = "fuse3 libfuse2 s3fs rclone awscli procps"


def _bootstrap() -> None:
    """Re-run under the project's virtualenv, installing whatever is missing first."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    setup = f'source "{ROOT}/scripts/_setup.sh" && ensure_apt {APT_PACKAGES} && ensure_venv bench'
    subprocess.run(["bash", "-c", setup], check=True)
    python = str(VENV / "bin" / "python")
    os.execv(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    _bootstrap()

# ----------------------------------------------------------------------------- after bootstrap

import argparse
import base64
import contextlib
import gzip
import json
import platform
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
PREFIX = "logs/"
TOOLS = ("s3logfs", "s3logfs-cat", "s3fs", "rclone", "s3tail", "awscli")
COLD_ONLY_TOOLS = {"s3logfs-cat"}
"""Tools measured in the cold-read scenarios only: ``s3logfs cat`` next to the mount."""
SCENARIOS = ("cold_small", "cold_gzip", "cached_reread", "warm_remount", "tail_n", "ls_l", "tail_f", "rss_1g", "scale", "handlers")
AB_SCENARIOS = ("cold_small", "cold_gzip", "cached_reread", "warm_remount", "tail_n", "ls_l")
"""What --ab runs unless --only says otherwise: the read path."""
FOLLOW_POLL_SECONDS = 1.0
"""Every follower (s3logfs's poller and the peers' loops) lists S3 this often."""


# ----------------------------------------------------------------------------- datasets


@dataclass
class Dataset:
    """Objects in one bucket under ``logs/``, and what a reader must see."""

    bucket: str
    keys: list[str]
    bodies: list[bytes]
    contents: list[bytes]
    gzip: bool

    @property
    def decoded_bytes(self) -> int:
        return sum(len(content) for content in self.contents)

    @property
    def stored_bytes(self) -> int:
        return sum(len(body) for body in self.bodies)

    def expected_file(self, work: Path) -> Path:
        """Every decoded line in key order, on local disk: what each tool must output."""
        expected = work / f"{self.bucket}.expected"
        if not expected.exists():
            with open(expected, "wb") as handle:
                handle.writelines(self.contents)
        return expected

    def checksum(self, work: Path) -> bytes:
        with open(self.expected_file(work), "rb") as expected:
            return subprocess.run(["cksum"], stdin=expected, capture_output=True, check=True).stdout

    def names(self) -> set[str]:
        return {key[len(PREFIX):] for key in self.keys}

    def last_lines(self, count: int) -> bytes:
        lines = b"".join(self.contents[-4:]).splitlines(keepends=True)
        return b"".join(lines[-count:])


def _s3_access_dataset(bucket: str, count: int, lines: int, seed: int) -> Dataset:
    from s3logfs.devtools.demo_data import s3_access_object

    rng = random.Random(seed)
    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    objects = [s3_access_object(rng, start + timedelta(seconds=37 * n), lines, prefix=PREFIX) for n in range(count)]
    return Dataset(bucket, [o.key for o in objects], [o.body for o in objects], [o.content for o in objects], False)


def _alb_dataset(bucket: str, count: int, decoded_size: int, unique: int, seed: int) -> Dataset:
    """ALB ``.log.gz`` objects; ``unique`` distinct bodies are reused under ``count`` keys.

    Generating and compressing a gigabyte of log lines would take minutes; no tool here
    deduplicates content, so reusing bodies changes no measurement.
    """
    from s3logfs.devtools.demo_data import ACCOUNT_ID, ALB_ID, ALB_NAME, REGION, large_gzip_object

    rng = random.Random(seed)
    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    made = [large_gzip_object(rng, start + timedelta(minutes=5 * n), decoded_size, prefix=PREFIX) for n in range(unique)]
    keys, bodies, contents = [], [], []
    for n in range(count):
        when = start + timedelta(minutes=5 * n)
        keys.append(
            f"{PREFIX}{ACCOUNT_ID}_elasticloadbalancing_{REGION}_app.{ALB_NAME}.{ALB_ID}_"
            f"{when:%Y%m%dT%H%MZ}_10.0.{n % 3}.1_{rng.getrandbits(32):08x}.log.gz"
        )
        bodies.append(made[n % unique].body)
        contents.append(made[n % unique].content)
    return Dataset(bucket, keys, bodies, contents, True)


DATASETS_OF = {
    "cold_small": ("small",), "cold_gzip": ("gzip",), "cached_reread": ("gzip",), "warm_remount": ("gzip",), "tail_n": ("many",),
    "ls_l": ("many",), "tail_f": ("follow",), "rss_1g": ("gzip", "big"),
}
"""The datasets each scenario reads: only those are generated and uploaded."""


def make_datasets(scale: float, scenarios: set[str]) -> dict[str, Dataset]:
    def scaled(count: int) -> int:
        return max(20, int(count * scale))

    makers = {
        "small": lambda: _s3_access_dataset("bench-small", scaled(2000), 100, seed=1),
        "gzip": lambda: _alb_dataset("bench-gzip", scaled(200), 2_500_000, unique=20, seed=2),
        "many": lambda: _s3_access_dataset("bench-many", scaled(10_000), 24, seed=3),
        "big": lambda: _alb_dataset("bench-big", scaled(400), 2_500_000, unique=20, seed=2),
        "follow": lambda: _s3_access_dataset("bench-follow", 20, 24, seed=4),
    }
    wanted = {name for scenario in scenarios for name in DATASETS_OF.get(scenario, ())}
    return {name: make() for name, make in makers.items() if name in wanted}


# ----------------------------------------------------------------------------- the server


class Server:
    """``python -m s3logfs.devtools.localserver`` in its own process, so it never shares our GIL."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "s3logfs.devtools.localserver"], stdout=subprocess.PIPE, text=True, env=_env()
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit("the local S3 server did not start")

    def control(self, action: str) -> dict:
        with urllib.request.urlopen(f"{self.url}/_localserver/{action}", timeout=30) as response:
            return json.loads(response.read())

    def set_latency(self, ms: float) -> None:
        self.control(f"latency?ms={ms}")

    def client(self) -> Any:  # a boto3 client
        import boto3
        import botocore.config

        config = botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32)
        return boto3.client("s3", endpoint_url=self.url, config=config, **_boto_credentials())

    def upload(self, dataset: Dataset) -> None:
        client = self.client()
        client.create_bucket(Bucket=dataset.bucket)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kb: client.put_object(Bucket=dataset.bucket, Key=kb[0], Body=kb[1]),
                          zip(dataset.keys, dataset.bodies)))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **CREDENTIALS, **extra)
    env.pop("AWS_PROFILE", None)
    env["LC_ALL"] = "C"
    return env


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    seconds: float
    ok: bool
    detail: str = ""
    requests: dict = field(default_factory=dict)
    peak_rss_mb: float | None = None


@dataclass
class Cell:
    """Every run of one tool in one scenario at one latency."""

    scenario: str
    tool: str
    latency_ms: float
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        good = [run.seconds for run in self.runs if run.ok]
        return statistics.median(good) if good and len(good) == len(self.runs) else None

    @property
    def peak_rss_mb(self) -> float | None:
        values = [run.peak_rss_mb for run in self.runs if run.peak_rss_mb is not None]
        return max(values) if values else None


def sh(command: str, env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, bytes]:
    """Run ``command`` in bash; its wall seconds and stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env or _env())
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command!r} failed ({process.returncode}): {err.decode(errors='replace')[-500:]}")
    return seconds, out


def daemon_peak_rss_mb(mountpoint: Path) -> float | None:
    """VmHWM of the process whose command line names ``mountpoint`` (the FUSE daemon)."""
    return _daemon_status_mb(mountpoint, "VmHWM:")


def _daemon_status_mb(mountpoint: Path, field: str) -> float | None:
    """A memory field of /proc/PID/status of the FUSE daemon of ``mountpoint``, in MB."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if str(mountpoint).encode() not in argv or b"bash" in argv[0]:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        except OSError:
            continue
    return None


def unmount(mountpoint: Path) -> None:
    for binary in ("fusermount3", "fusermount"):
        if shutil.which(binary):
            subprocess.run([binary, "-u", "-z", str(mountpoint)], capture_output=True, check=False)
            break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and daemon_peak_rss_mb(mountpoint) is not None:
        time.sleep(0.05)


def wait_mounted(mountpoint: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{mountpoint} did not mount")


# ----------------------------------------------------------------------------- the tools


class Tool:
    """How one tool does each job. Mounting tools mount inside the timed region."""

    name = ""
    mounts = True

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.url = bench.server.url

    def mount(self, dataset: Dataset, mountpoint: Path, follow: bool = False) -> str:
        """A shell command that mounts ``dataset`` on ``mountpoint`` and returns once it answers."""
        raise NotImplementedError

    def read_all(self, dataset: Dataset, where: Path) -> str:
        """A shell command that writes every decoded line of ``dataset`` to stdout."""
        tool = "zcat" if dataset.gzip else "cat"
        return f"cd {where} && ls | xargs {tool} --"

    def last_lines(self, dataset: Dataset, where: Path, count: int) -> str:
        return f'cd {where} && tail -q -n {count} -- "$(ls | tail -n 1)"'

    def listing(self, dataset: Dataset, where: Path) -> str:
        return f"ls -l {where}"

    def follower(self, dataset: Dataset, where: Path) -> str:
        """A shell command that prints each new object's lines as it lands, polling each second."""
        return (
            f"cd {where}; seen=$(ls); while sleep {FOLLOW_POLL_SECONDS}; do now=$(ls); "
            f'comm -13 <(echo "$seen") <(echo "$now") | while read -r f; do cat -- "$f"; done; seen=$now; done'
        )


class S3logfsTool(Tool):
    name = "s3logfs"

    def __init__(self, bench: Bench, code: Path | None = None, label: str = "") -> None:
        """``code``: a checkout whose ``s3logfs`` package runs instead of the installed one (--ab)."""
        super().__init__(bench)
        self.name = f"{type(self).name}{label}"
        binary = Path(sys.executable).parent / "s3logfs"  # a console script: the cwd is not on its path
        self.command = f"env PYTHONPATH={code} {binary}" if code else str(binary)

    def mount(self, dataset: Dataset, mountpoint: Path, follow: bool = False, cache: Path | None = None) -> str:
        cache = cache or Path(tempfile.mkdtemp(prefix="bench-cache-", dir=self.bench.work))
        poll = FOLLOW_POLL_SECONDS if follow else 0
        return (f"{self.command} mount {dataset.bucket}/{PREFIX} {mountpoint} --endpoint-url {self.url} "
                f"--cache-dir {cache} --poll-interval {poll} -c {self.bench.work}/s3logfsrc {self.bench.args.s3logfs_args}")

    def read_all(self, dataset: Dataset, where: Path) -> str:
        return f"cat {where}/stream"

    def last_lines(self, dataset: Dataset, where: Path, count: int) -> str:
        return f"tail -n {count} {where}/stream"

    def follower(self, dataset: Dataset, where: Path) -> str:
        return f"tail -n 0 -f -s 0.2 {where}/stream"


class S3logfsCatTool(S3logfsTool):
    """``s3logfs cat``: the mount's engine without FUSE, on stdout."""

    name = "s3logfs-cat"
    mounts = False

    def read_all(self, dataset: Dataset, where: Path) -> str:
        cache = tempfile.mkdtemp(prefix="bench-cache-", dir=self.bench.work)
        return (f"{self.command} cat {dataset.bucket}/{PREFIX} --endpoint-url {self.url} --cache-dir {cache} "
                f"-c {self.bench.work}/s3logfsrc {self.bench.args.s3logfs_args} 2>/dev/null")


class S3fsTool(Tool):
    name = "s3fs"

    def mount(self, dataset: Dataset, mountpoint: Path, follow: bool = False) -> str:
        passwd = self.bench.work / "s3fs-passwd"
        passwd.write_text("testing:testing\n")
        passwd.chmod(0o600)
        return (f"s3fs {dataset.bucket}:/{PREFIX.rstrip('/')} {mountpoint} -o url={self.url} "
                f"-o use_path_request_style -o passwd_file={passwd} -o endpoint=us-east-1 -o ro "
                f"&& {_wait_mount_shell(mountpoint)}")


class RcloneTool(Tool):
    name = "rclone"

    def mount(self, dataset: Dataset, mountpoint: Path, follow: bool = False) -> str:
        cache_time = "1s" if follow else "5m"  # 5m is rclone's default; a follower needs fresh listings
        return (f"env -u AWS_CA_BUNDLE rclone mount :s3:{dataset.bucket}/{PREFIX.rstrip('/')} {mountpoint} "
                f"--config /dev/null --daemon --read-only --s3-provider Other --s3-endpoint {self.url} "
                f"--s3-access-key-id testing --s3-secret-access-key testing --s3-region us-east-1 "
                f"--dir-cache-time {cache_time} && {_wait_mount_shell(mountpoint)}")


class S3tailTool(Tool):
    """s3tail's algorithm: one sequential boto3 reader (s3tail 0.2.1 itself needs Python 2)."""

    name = "s3tail"
    mounts = False

    def _run(self, dataset: Dataset, mode: str) -> str:
        return (f"{sys.executable} {Path(__file__).resolve()} _s3tail --endpoint-url {self.url} "
                f"--bucket {dataset.bucket} --prefix {PREFIX} --mode {mode}")

    def read_all(self, dataset: Dataset, where: Path) -> str:
        return self._run(dataset, "cat")

    def last_lines(self, dataset: Dataset, where: Path, count: int) -> str:
        """s3tail reads forward from a bookmark or the prefix's start: it has no way to the end."""
        return f"{self._run(dataset, 'cat')} | tail -n {count}"

    def listing(self, dataset: Dataset, where: Path) -> str:
        return self._run(dataset, "ls")

    def follower(self, dataset: Dataset, where: Path) -> str:
        return self._run(dataset, "follow")


class AwscliTool(Tool):
    name = "awscli"
    mounts = False

    def _aws(self, arguments: str) -> str:
        return f"/usr/bin/aws --endpoint-url {self.url} {arguments}"

    def read_all(self, dataset: Dataset, where: Path) -> str:
        copy = self._aws(f"s3 cp --recursive --only-show-errors s3://{dataset.bucket}/{PREFIX} {where}")
        return f"{copy} && {super().read_all(dataset, where)}"

    def last_lines(self, dataset: Dataset, where: Path, count: int) -> str:
        last = f"$({self._aws(f's3 ls s3://{dataset.bucket}/{PREFIX}')} | tail -n 1 | awk '{{print $4}}')"
        return f"{self._aws(f's3 cp s3://{dataset.bucket}/{PREFIX}{last} -')} | tail -n {count}"

    def listing(self, dataset: Dataset, where: Path) -> str:
        return self._aws(f"s3 ls s3://{dataset.bucket}/{PREFIX}")

    def follower(self, dataset: Dataset, where: Path) -> str:
        listing = self._aws(f"s3 ls s3://{dataset.bucket}/{PREFIX}") + " | awk '{print $4}'"
        fetch = self._aws(f's3 cp "s3://{dataset.bucket}/{PREFIX}$f" -')
        return (f"seen=$({listing}); while sleep {FOLLOW_POLL_SECONDS}; do now=$({listing}); "
                f'comm -13 <(echo "$seen") <(echo "$now") | while read -r f; do {fetch}; done; seen=$now; done')


class PassthroughTool(Tool):
    """The bare pass-through mfusepy mount of the decoded bytes: the ceiling for a cached read."""

    name = "passthrough"


def _wait_mount_shell(mountpoint: Path) -> str:
    return f"for i in $(seq 600); do mountpoint -q {mountpoint} && break; sleep 0.02; done; mountpoint -q {mountpoint}"


TOOL_CLASSES: dict[str, type[Tool]] = {
    cls.name: cls for cls in (S3logfsTool, S3logfsCatTool, S3fsTool, RcloneTool, S3tailTool, AwscliTool)
}


# ----------------------------------------------------------------------------- scenarios


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="s3logfs-bench-"))
        (self.work / "s3logfsrc").write_text("")
        self.server = Server()
        self.tools = {name: TOOL_CLASSES[name](self) for name in args.tools}
        self.baselines: dict[str, Tool] = {}
        """--ab: the same s3logfs tools, running the code of the other revision."""
        if args.ab:
            for name, tool in self.tools.items():
                if isinstance(tool, S3logfsTool):
                    self.baselines[name] = type(tool)(self, args.ab_code, f"@{args.ab}")
        self.cells: list[Cell] = []
        self._mount_count = 0
        self.round = 0
        """--ab: which alternation round is running; odd rounds run the sides the other way round."""

    def lineup(self, names: list[str] | None = None) -> list[Tool]:
        """The tools to run (by name, default all), each s3logfs tool next to its --ab baseline,
        in this round's order."""
        tools: list[Tool] = []
        for name, tool in self.tools.items():
            if names is None or name in names:
                tools += [tool, self.baselines[name]] if name in self.baselines else [tool]
        return tools[::-1] if self.round % 2 else tools

    @contextlib.contextmanager
    def place(self, tool: Tool, dataset: Dataset, follow: bool = False) -> Iterator[tuple[Path, str]]:
        """A mountpoint (mounting tools) or an empty directory, and the command that prepares it."""
        self._mount_count += 1
        where = self.work / f"{tool.name}-{self._mount_count}"
        where.mkdir()
        try:
            yield where, (tool.mount(dataset, where, follow) if tool.mounts else "true")
        finally:
            if tool.mounts:
                unmount(where)
            shutil.rmtree(where, ignore_errors=True)

    def measure(self, scenario: str, tool: Tool, latency: float, attempt: Callable[[], Run]) -> Cell:
        """Run ``attempt`` --repeat times (once per round with --ab) into the cell of this
        scenario, tool and latency."""
        cell = self._cell(scenario, tool.name, latency)
        wanted = 1 if self.args.ab else self.args.repeat
        made, spent = 0, 0.0
        while made < wanted and (not made or spent < self.args.budget):
            self.server.control("reset")
            try:
                run = attempt()
            except Exception as error:  # noqa: BLE001 - a failed peer, whatever it raised, is reported, not fatal
                run = Run(0.0, False, f"error: {error}")
            run.requests = run.requests or _requests_summary(self.server.control("stats"))
            cell.runs.append(run)
            made += 1
            spent += run.seconds
            _progress(cell, run)
            if not run.ok:
                break
        return cell

    def _cell(self, scenario: str, tool: str, latency: float) -> Cell:
        for cell in self.cells:
            if (cell.scenario, cell.tool, cell.latency_ms) == (scenario, tool, latency):
                return cell
        self.cells.append(Cell(scenario, tool, latency))
        return self.cells[-1]

    # one scenario each --------------------------------------------------------------

    def cold_read(self, scenario: str, tool: Tool, dataset: Dataset, latency: float) -> Cell:
        def attempt() -> Run:
            with self.place(tool, dataset) as (where, prepare):
                seconds, out = sh(f"{prepare} && {tool.read_all(dataset, where)} | cksum")
                rss = daemon_peak_rss_mb(where) if tool.mounts else None
            return self._check(seconds, out, dataset, rss)

        return self.measure(scenario, tool, latency, attempt)

    def cached_reread(self, tool: Tool, dataset: Dataset, latency: float) -> Cell:
        """s3logfs re-reading ``stream`` from its cache, once a first read has filled it."""
        with self.place(tool, dataset) as (where, prepare):
            sh(f"{prepare} && cat {where}/stream > /dev/null")
            return self.measure("cached_reread", tool, latency,
                                lambda: self._check(*sh(f"cat {where}/stream | cksum"), dataset, None))

    def warm_remount(self, tool: S3logfsTool, dataset: Dataset, latency: float) -> Cell:
        """A new mount over a cache that an earlier mount filled, then ``cat stream``: the next
        day's first read. The mount's start (index, cache checks) is in the time."""
        cache = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=self.work))
        with self.place(tool, dataset) as (where, _):
            sh(f"{tool.mount(dataset, where, cache=cache)} && cat {where}/stream > /dev/null")

        def attempt() -> Run:
            with self.place(tool, dataset) as (where, _):
                seconds, out = sh(f"{tool.mount(dataset, where, cache=cache)} && cat {where}/stream | cksum")
            return self._check(seconds, out, dataset, None)

        return self.measure("warm_remount", tool, latency, attempt)

    def passthrough_read(self, dataset: Dataset, latency: float) -> Cell:
        """A bare pass-through FUSE read of the same bytes: the ceiling for a cached read."""
        source = self.work / "passthrough-source"
        source.mkdir(exist_ok=True)
        if not (source / "stream").exists():
            os.link(dataset.expected_file(self.work), source / "stream")
        target = self.work / "passthrough"
        target.mkdir(exist_ok=True)
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_passthrough", str(source),
                                    str(target)])
        try:
            wait_mounted(target)
            sh(f"cat {target}/stream > /dev/null")
            return self.measure("cached_reread", PassthroughTool(self), latency,
                                lambda: self._check(*sh(f"cat {target}/stream | cksum"), dataset, None))
        finally:
            unmount(target)
            process.wait(timeout=30)

    def _check(self, seconds: float, out: bytes, dataset: Dataset, rss: float | None) -> Run:
        expected = dataset.checksum(self.work)
        ok = out.split() == expected.split()
        return Run(seconds, ok, "" if ok else f"cksum {out!r}, expected {expected!r}", peak_rss_mb=rss)

    def tail_n(self, tool: Tool, dataset: Dataset, latency: float) -> Cell:
        expected = dataset.last_lines(20)

        def attempt() -> Run:
            with self.place(tool, dataset) as (where, prepare):
                seconds, out = sh(f"{prepare} && {tool.last_lines(dataset, where, 20)}")
            ok = out == expected
            return Run(seconds, ok, "" if ok else f"wrong lines: {out[-200:]!r}")

        return self.measure("tail_n", tool, latency, attempt)

    def ls_l(self, tool: Tool, dataset: Dataset, latency: float) -> Cell:
        def attempt() -> Run:
            with self.place(tool, dataset) as (where, prepare):
                seconds, out = sh(f"{prepare} && {tool.listing(dataset, where)}")
            listed = {line.split()[-1] for line in out.decode().splitlines() if len(line.split()) >= 4}
            missing = dataset.names() - listed
            ok = not missing and len(listed - dataset.names()) <= 1  # s3logfs lists `stream` too
            return Run(seconds, ok, "" if ok else f"{len(missing)} missing, {len(listed)} listed")

        return self.measure("ls_l", tool, latency, attempt)

    def tail_f(self, tool: Tool, dataset: Dataset, latency: float) -> Cell:
        client = self.server.client()
        with self.place(tool, dataset, follow=True) as (where, prepare):
            sh(prepare)
            follower = subprocess.Popen(["bash", "-c", tool.follower(dataset, where)], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
            seen: dict[bytes, float] = {}
            reader = threading.Thread(target=_watch_markers, args=(follower, seen), daemon=True)
            reader.start()
            time.sleep(2.5)  # let the follower take its first listing
            rng = random.Random(7)

            def attempt() -> Run:
                marker = f"bench-marker-{rng.getrandbits(48):012x}".encode()
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
                key = f"{PREFIX}{stamp}-{marker.decode()[-12:].upper()}"
                time.sleep(rng.uniform(0, FOLLOW_POLL_SECONDS))
                client.put_object(Bucket=dataset.bucket, Key=key, Body=b"new line " + marker + b"\n")
                put_at = time.perf_counter()
                deadline = put_at + 30
                while marker not in seen and time.perf_counter() < deadline:
                    time.sleep(0.005)
                if marker not in seen:
                    return Run(30.0, False, "the new line never appeared")
                return Run(seen[marker] - put_at, True)

            try:
                return self.measure("tail_f", tool, latency, attempt)
            finally:
                os.killpg(follower.pid, signal.SIGTERM)
                follower.wait(timeout=10)

    def rss(self, tool: Tool, dataset: Dataset) -> Cell:
        """Peak RSS of the s3logfs daemon over a cold ``cat stream``; run at two sizes to show it is flat."""
        name = f"rss_{dataset.decoded_bytes / 1e9:.2f}GB"
        return self.cold_read(name, tool, dataset, 0.0)


def _watch_markers(process: subprocess.Popen, seen: dict[bytes, float]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        position = line.find(b"bench-marker-")
        if position >= 0:
            seen.setdefault(line[position:].strip(), time.perf_counter())


def _requests_summary(stats: dict) -> dict:
    kinds = stats.get("kinds", {})
    return {
        "list": kinds.get("list", {}).get("requests", 0),
        "get": kinds.get("get", {}).get("requests", 0),
        "head": kinds.get("head", {}).get("requests", 0),
        "get_bytes": kinds.get("get", {}).get("bytes", 0),
        "max_in_flight": stats.get("max_in_flight", 0),
    }


def _progress(cell: Cell, run: Run) -> None:
    state = f"{run.seconds:8.3f} s" if run.ok else f"FAILED {run.detail}"
    requests = run.requests
    sys.stderr.write(
        f"  {cell.scenario:<14} {cell.latency_ms:>4.0f} ms  {cell.tool:<12} {state}"
        f"  (GET {requests.get('get', 0)}, LIST {requests.get('list', 0)}, HEAD {requests.get('head', 0)},"
        f" in flight <= {requests.get('max_in_flight', 0)})\n"
    )
    sys.stderr.flush()


# ----------------------------------------------------------------------------- the scale scenario

SCALE_ACCOUNT = "123456789012"
SCALE_PREFIX = f"AWSLogs/{SCALE_ACCOUNT}/elasticloadbalancing/"
SCALE_DAYS = 730
SCALE_DENSE_DAY = 2880
"""Objects in the last day: ten ALB nodes, one file each per 5 minutes."""
SCALE_WINDOWS = ("", "2h")


@dataclass
class ScaleRow:
    """One mount of the scale scenario: a prefix of ``keys`` objects, with or without ``--since``."""

    keys: int
    since: str
    mount_seconds: float
    tail_seconds: float
    lists: int
    gets: int
    gets_settled: int
    """GETs once the background trailer probes are done (none for 3 s)."""
    listed_objects: int
    rss_mb: float | None
    ok: bool
    detail: str = ""


def scale_keys(count: int, now: datetime, rng: random.Random) -> list[tuple[str, int, float]]:
    """A day-partitioned ALB prefix of ``count`` objects over two years, the last day dense.

    Each object is ``(key, body, LastModified)``: its name is the end of its 5-minute
    interval, its folder that time's day, and the body one of a few shared ones.
    """
    older = max(0, count - SCALE_DENSE_DAY)
    stamps = [now - timedelta(days=1) * (SCALE_DAYS * (older - n) / max(1, older)) - timedelta(days=1)
              for n in range(older)]
    stamps += [now - timedelta(seconds=86400 * (min(count, SCALE_DENSE_DAY) - n) / SCALE_DENSE_DAY)
               for n in range(min(count, SCALE_DENSE_DAY))]
    objects = []
    for number, stamp in enumerate(stamps):
        end = stamp.replace(minute=stamp.minute - stamp.minute % 5, second=0, microsecond=0)
        key = (f"{SCALE_PREFIX}us-east-1/{end:%Y/%m/%d}/{SCALE_ACCOUNT}_elasticloadbalancing_us-east-1_"
               f"app.bench.50dc6c495c0c9188_{end:%Y%m%dT%H%MZ}_10.0.{number % 10}.1_{rng.getrandbits(32):08x}.log.gz")
        objects.append((key, number % len(SCALE_BODY_SEEDS), end.timestamp()))
    return objects


SCALE_BODY_SEEDS = (11, 12, 13, 14)


def scale_bodies() -> list[tuple[bytes, bytes]]:
    """A few ALB objects' stored and decoded bytes, shared by every key (no tool deduplicates)."""
    from s3logfs.devtools.demo_data import alb_object

    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    made = [alb_object(random.Random(seed), start, 20, prefix="") for seed in SCALE_BODY_SEEDS]
    return [(obj.body, obj.content) for obj in made]


def seed_scale_bucket(server: Server, bucket: str, objects: list[tuple[str, int, float]], bodies: list[bytes]) -> None:
    """Create ``bucket`` in moto and seed its keys into the server's sorted index (seconds for a million)."""
    server.client().create_bucket(Bucket=bucket)
    head = json.dumps([base64.b64encode(body).decode() for body in bodies])
    rows = "".join(f"{key}\t{body}\t{stamp}\n" for key, body, stamp in objects)
    payload = gzip.compress(f"{head}\n{rows}".encode(), compresslevel=1)
    request = urllib.request.Request(f"{server.url}/_localserver/seed?bucket={bucket}", data=payload, method="POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        seeded = json.loads(response.read())
    if seeded["keys"] != len(objects):
        raise RuntimeError(f"seeded {seeded['keys']} keys, expected {len(objects)}")


def daemon_rss_mb(mountpoint: Path) -> float | None:
    """VmRSS of the FUSE daemon of ``mountpoint``, now."""
    return _daemon_status_mb(mountpoint, "VmRSS:")


def run_scale(bench: Bench, sizes: list[int]) -> list[ScaleRow]:
    """Mount each scale prefix with and without ``--since 2h``: seconds, requests and RSS."""
    rows = []
    now = datetime.now(timezone.utc)
    made = scale_bodies()
    bodies = [body for body, _ in made]
    for count in sizes:
        bucket = f"bench-scale-{count}"
        sys.stderr.write(f"seeding {count} keys into {bucket}...\n")
        objects = scale_keys(count, now, random.Random(count))
        seed_scale_bucket(bench.server, bucket, objects, bodies)
        last = made[objects[-1][1]][1]
        expected = b"".join(last.splitlines(keepends=True)[-5:])
        window_start = (datetime.now(timezone.utc) - timedelta(hours=2)).timestamp()
        in_window = sum(1 for _, _, stamp in objects if stamp > window_start)
        for since in SCALE_WINDOWS:
            rows.append(scale_mount(bench, bucket, count, since, expected, in_window if since else count))
            sys.stderr.write(f"  scale {count:>8} keys  --since {since or '-':<3} {rows[-1]}\n")
    return rows


def scale_mount(bench: Bench, bucket: str, count: int, since: str, expected: bytes, listed: int) -> ScaleRow:
    mountpoint = bench.work / f"scale-{count}-{since or 'all'}"
    mountpoint.mkdir()
    cache = tempfile.mkdtemp(prefix="bench-cache-", dir=bench.work)
    binary = Path(sys.executable).parent / "s3logfs"
    window = f"--since {since}" if since else ""
    bench.server.control("reset")
    try:
        mount_seconds, _ = sh(f"{binary} mount {bucket}/{SCALE_PREFIX} {mountpoint} --endpoint-url {bench.server.url} "
                              f"--cache-dir {cache} --poll-interval 0 -c {bench.work}/s3logfsrc {window}")
        tail_seconds, out = sh(f"tail -n 5 {mountpoint}/stream")
        requests = _requests_summary(bench.server.control("stats"))
        rss = daemon_rss_mb(mountpoint)
        settled = settled_gets(bench.server)
        ok = out == expected
        stats = json.loads(os.getxattr(mountpoint, "user.s3logfs.stats"))
        ok = ok and abs(stats["keys"] - listed) <= 20  # the window's edge moves while it runs
        detail = "" if ok else f"tail printed {out[-200:]!r}; {stats['keys']} keys listed, about {listed} expected"
        return ScaleRow(count, since, mount_seconds, tail_seconds, requests["list"], requests["get"], settled,
                        stats["keys"], rss, ok, detail)
    finally:
        unmount(mountpoint)
        shutil.rmtree(cache, ignore_errors=True)


def settled_gets(server: Server, quiet: float = 3.0, limit: float = 120.0) -> int:
    """The server's GET count once it has not moved for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    count = _requests_summary(server.control("stats"))["get"]
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = _requests_summary(server.control("stats"))["get"]
        if now == count:
            break
        count = now
    return count


def scale_report(rows: list[ScaleRow]) -> str:
    lines = ["| keys | window | mount | first line of `tail -n 5` | LIST | GET (then, with probes) | objects listed | RSS |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        rss = f"{row.rss_mb:.0f} MB" if row.rss_mb is not None else "-"
        state = "" if row.ok else " (FAILED)"
        lines.append(f"| {row.keys:,} | {'--since ' + row.since if row.since else 'none'} | {row.mount_seconds:.2f} s "
                     f"| {row.tail_seconds:.2f} s | {row.lists} | {row.gets} ({row.gets_settled}) | {row.listed_objects:,} "
                     f"| {rss}{state} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- running


def run_all(bench: Bench, datasets: dict[str, Dataset]) -> None:
    """Every chosen scenario at every latency; with --ab, --repeat rounds of it, alternated."""
    rounds = bench.args.repeat if bench.args.ab else 1
    for bench.round in range(rounds):
        if bench.args.ab:
            sys.stderr.write(f"round {bench.round + 1} of {rounds}\n")
        run_round(bench, datasets)


def run_round(bench: Bench, datasets: dict[str, Dataset]) -> None:
    args = bench.args
    cold_tools = bench.lineup()
    tools = [tool for tool in cold_tools if tool.name.split("@")[0] not in COLD_ONLY_TOOLS]
    for latency in args.latency_ms:
        bench.server.set_latency(latency)
        sys.stderr.write(f"latency {latency:g} ms per request\n")
        if "cold_small" in args.only:
            for tool in cold_tools:
                bench.cold_read("cold_small", tool, datasets["small"], latency)
        if "cold_gzip" in args.only:
            for tool in cold_tools:
                bench.cold_read("cold_gzip", tool, datasets["gzip"], latency)
        if "cached_reread" in args.only and "s3logfs" in bench.tools and latency == args.latency_ms[0]:
            for tool in bench.lineup(["s3logfs"]):
                bench.cached_reread(tool, datasets["gzip"], latency)
            bench.passthrough_read(datasets["gzip"], latency)
        if "warm_remount" in args.only and "s3logfs" in bench.tools:
            for tool in bench.lineup(["s3logfs"]):
                bench.warm_remount(tool, datasets["gzip"], latency)
        if "tail_n" in args.only:
            for tool in tools:
                bench.tail_n(tool, datasets["many"], latency)
        if "ls_l" in args.only:
            for tool in tools:
                bench.ls_l(tool, datasets["many"], latency)
        if "tail_f" in args.only:
            for tool in tools:
                bench.tail_f(tool, datasets["follow"], latency)
    if "rss_1g" in args.only and "s3logfs" in bench.tools:
        bench.server.set_latency(0)
        for tool in bench.lineup(["s3logfs"]):
            bench.rss(tool, datasets["gzip"])
            bench.rss(tool, datasets["big"])


def report(bench: Bench, datasets: dict[str, Dataset]) -> str:
    """The table: median seconds per tool, and each peer's time as a multiple of s3logfs's."""
    peers = [name for name in TOOLS if name in bench.tools and name != "s3logfs"]
    columns = ["s3logfs", *peers, "passthrough"]
    rows: dict[tuple[str, float], dict[str, Cell]] = {}
    for cell in bench.cells:
        rows.setdefault((cell.scenario, cell.latency_ms), {})[cell.tool] = cell
    used = [column for column in columns if any(column in row for row in rows.values())]
    lines = [
        "| scenario | latency | " + " | ".join(used) + " |",
        "|---|---|" + "---|" * len(used),
    ]
    for (scenario, latency), row in rows.items():
        ours = row.get("s3logfs")
        ours_time = ours.median if ours else None
        cells = []
        for column in used:
            cell = row.get(column)
            cells.append(_format_cell(cell, ours_time, column == "s3logfs", scenario))
        lines.append(f"| {scenario} | {latency:g} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_ab(bench: Bench) -> str:
    """--ab: per cell, REV's and the working tree's median (with the range of the rounds) and
    their ratio; peers run in the same rounds are shown for scale."""
    peers = [name for name in TOOLS if name in bench.tools and name not in bench.baselines]
    peers += ["passthrough"] if any(cell.tool == "passthrough" for cell in bench.cells) else []
    lines = [
        f"| scenario | latency | s3logfs@{bench.args.ab} | working tree | ratio |"
        + "".join(f" {name} |" for name in peers),
        "|---|---|---|---|---|" + "---|" * len(peers),
    ]
    cells = {(cell.scenario, cell.latency_ms, cell.tool): cell for cell in bench.cells}
    keys = dict.fromkeys((cell.scenario, cell.latency_ms) for cell in bench.cells)
    for scenario, latency in keys:
        for name, baseline in bench.baselines.items():
            new, old = cells.get((scenario, latency, name)), cells.get((scenario, latency, baseline.name))
            if new is None or old is None:
                continue
            ratio = f"{new.median / old.median:.2f}" if new.median and old.median else "-"
            label = scenario if name == "s3logfs" else f"{scenario} ({name})"
            row = f"| {label} | {latency:g} ms | {_spread(old)} | {_spread(new)} | {ratio} |"
            lines.append(row + "".join(f" {_spread(cells.get((scenario, latency, peer)))} |" for peer in peers))
    return "\n".join(lines)


def _spread(cell: Cell | None) -> str:
    """The median, and the fastest and slowest run: how far one run can be trusted."""
    if cell is None:
        return "-"
    if cell.median is None:
        return "failed"
    seconds = [run.seconds for run in cell.runs]
    return f"{cell.median:.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"


def _format_cell(cell: Cell | None, ours: float | None, is_ours: bool, scenario: str) -> str:
    if cell is None:
        return "-"
    median = cell.median
    if median is None:
        return "failed"
    text = f"{median:.2f} s"
    if scenario.startswith("rss_"):
        text += f", {cell.peak_rss_mb:.0f} MB RSS" if cell.peak_rss_mb is not None else ""
    elif not is_ours and ours:
        text += f" ({median / ours:.1f}x)"
    return text


def machine() -> dict[str, str]:
    def version(command: str) -> str:
        try:
            return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                                  check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    return {
        "cpu": version("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "s3fs": version("s3fs --version | head -n 1"),
        "rclone": version("rclone version | head -n 1"),
        "awscli": version("/usr/bin/aws --version"),
        "libfuse": version("dpkg-query -W -f '${Version}' libfuse3-3"),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", default="0,30", help="comma-separated latencies per request (0,30)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)} (all; with --ab, "
                        f"{','.join(AB_SCENARIOS)})")
    parser.add_argument("--repeat", type=int, help="runs per cell, or rounds with --ab; medians are reported (3, 5)")
    parser.add_argument("--s3logfs-args", default="", metavar="ARGS",
                        help="more options for s3logfs mount and cat, in one string (--s3logfs-args='--prefetch 16')")
    parser.add_argument("--ab", metavar="REV",
                        help="measure s3logfs at git revision REV against the working tree, alternated")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds after which a cell stops repeating (60): slow peers run once")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply dataset sizes (1.0)")
    parser.add_argument("--scale-keys", default="10000,100000,1000000",
                        help="prefix sizes of the scale scenario, seeded into the sorted-index server (10000,100000,1000000)")
    parser.add_argument("--json", default="bench.json", help="where to write every measurement (bench.json)")
    args = parser.parse_args(argv)
    args.latency_ms = [float(value) for value in args.latency_ms.split(",")]
    args.tools = [name for name in args.tools.split(",") if name]
    args.only = set((args.only or ",".join(AB_SCENARIOS if args.ab else SCENARIOS)).split(","))
    args.repeat = args.repeat or (5 if args.ab else 3)
    unknown = (set(args.tools) - set(TOOLS)) | (args.only - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    if args.ab:
        if args.only & {"scale", "handlers"}:
            parser.error("--ab compares the read path: scale and handlers have no A/B mode")
        if not set(args.tools) & {"s3logfs", "s3logfs-cat"}:
            parser.error("--ab needs s3logfs or s3logfs-cat among --tools")
        with checkout(args.ab) as args.ab_code:
            return run(args, argv)
    return run(args, argv)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    if "handlers" in args.only:  # the logging handlers: scripts/bench_handlers.py, with its own server
        status = subprocess.call([sys.executable, str(ROOT / "scripts" / "bench_handlers.py"),
                                  "--repeat", str(args.repeat)])
        args.only.discard("handlers")
        if status or not args.only:
            return status

    sys.stderr.write("generating datasets...\n")
    datasets = make_datasets(args.scale, args.only)
    bench = Bench(args)
    scale_rows: list[ScaleRow] = []
    try:
        sys.stderr.write(f"uploading to {bench.server.url}...\n")
        for dataset in datasets.values():
            bench.server.upload(dataset)
        run_all(bench, datasets)
        if "scale" in args.only:
            bench.server.set_latency(0)
            scale_rows = run_scale(bench, [int(size) for size in args.scale_keys.split(",") if size])
    finally:
        bench.server.stop()
        shutil.rmtree(bench.work, ignore_errors=True)
    table = report_ab(bench) if args.ab else report(bench, datasets)
    about = machine()
    sizes = {name: {"objects": len(d.keys), "stored_bytes": d.stored_bytes, "decoded_bytes": d.decoded_bytes}
             for name, d in datasets.items()}
    result = {"command": "scripts/bench.py " + " ".join(argv), "machine": about, "datasets": sizes,
              "cells": [dict(asdict(cell), median=cell.median) for cell in bench.cells], "table": table,
              "scale": [asdict(row) for row in scale_rows]}
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"machine: {about['cpu']}, {about['cores']} cores, Linux {about['kernel']}, Python {about['python']}")
    print("datasets: " + "; ".join(f"{name} {s['objects']} objects, {s['decoded_bytes'] / 1e6:.0f} MB decoded"
                                   for name, s in sizes.items()))
    if bench.cells:
        print(report_ab(bench) if args.ab else table)
    if scale_rows:
        print("scale (listings from the sorted-index server, GETs of seeded keys from shared bodies):")
        print(scale_report(scale_rows))
    if args.ab:
        print(f"(every run is in {args.json}; ratio: the working tree's median over {args.ab}'s, "
              f"{args.repeat} alternated rounds)")
    else:
        print(f"(every run is in {args.json}; ratios are the peer's median time over s3logfs's)")
    return 0 if all(cell.median is not None for cell in bench.cells) and all(row.ok for row in scale_rows) else 1


@contextlib.contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """A detached git worktree of ``revision``, removed afterwards; its code runs with this
    virtualenv's packages."""
    place = Path(tempfile.mkdtemp(prefix="s3logfs-ab-")) / "tree"
    try:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach", str(place), revision],
                       check=True)
    except subprocess.CalledProcessError:
        raise SystemExit(f"--ab: cannot check out {revision!r}") from None
    try:
        yield place
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(place)], check=False)
        shutil.rmtree(place.parent, ignore_errors=True)


# ----------------------------------------------------------------------------- helpers run as subprocesses


def s3tail_main(argv: list[str]) -> int:
    """s3tail's algorithm with boto3: list, then GET each key in order and gunzip, one at a time."""
    import boto3

    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint-url")
    parser.add_argument("--bucket")
    parser.add_argument("--prefix")
    parser.add_argument("--mode", choices=("cat", "ls", "follow"))
    args = parser.parse_args(argv)
    client = boto3.client("s3", endpoint_url=args.endpoint_url, **_boto_credentials())
    out = sys.stdout.buffer

    def keys(start_after: str = "") -> Iterator[dict]:
        paginator = client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        for page in paginator.paginate(Bucket=args.bucket, Prefix=args.prefix, **extra):
            yield from page.get("Contents", ())

    def emit(key: str) -> None:
        body = client.get_object(Bucket=args.bucket, Key=key)["Body"].read()
        out.write(_gunzip_all(body) if body[:2] == b"\x1f\x8b" else body)
        out.flush()

    if args.mode == "ls":
        for item in keys():
            name = item["Key"][len(args.prefix):]
            out.write(f"{item['LastModified']:%Y-%m-%d %H:%M:%S} {item['Size']:>12} {name}\n".encode())
    elif args.mode == "cat":
        for item in keys():
            emit(item["Key"])
    else:
        last = max((item["Key"] for item in keys()), default="")
        while True:
            time.sleep(FOLLOW_POLL_SECONDS)
            for item in keys(last):
                emit(item["Key"])
                last = item["Key"]
    return 0


def _gunzip_all(body: bytes) -> bytes:
    """Every member, not just the first (s3tail's own bug, fixed here)."""
    parts = []
    while body:
        decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)
        parts.append(decoder.decompress(body))
        body = decoder.unused_data
    return b"".join(parts)


def passthrough_main(argv: list[str]) -> int:
    """A bare read-only pass-through mfusepy file system: the ceiling for a cached FUSE read."""
    import ctypes.util
    import errno

    if ctypes.util.find_library("fuse3"):  # the libfuse s3logfs picks, for a like-for-like ceiling
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy

    source, mountpoint = argv

    class Passthrough(mfusepy.Operations):
        use_ns = True

        def _path(self, path: str) -> str:
            return os.path.join(source, path.lstrip("/"))

        def getattr(self, path: str, fh: int | None = None) -> dict:
            try:
                st = os.lstat(self._path(path))
            except FileNotFoundError:
                raise mfusepy.FuseOSError(errno.ENOENT) from None
            return {name: getattr(st, name) for name in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid",
                                                         "st_atime_ns", "st_mtime_ns", "st_ctime_ns")}

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._path(path))]

        def open(self, path: str, flags: int) -> int:
            return os.open(self._path(path), os.O_RDONLY)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return os.pread(fh, size, offset)

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

    mfusepy.FUSE(Passthrough(), mountpoint, foreground=True, ro=True)
    return 0


if __name__ == "__main__":
    helpers = {"_s3tail": s3tail_main, "_passthrough": passthrough_main}
    if sys.argv[1:2] and sys.argv[1] in helpers:
        sys.exit(helpers[sys.argv[1]](sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
