"""How S3 keys become paths in the mount, and the directory tree they form.

S3 keys are arbitrary UTF-8 strings; paths are not. The mapping, documented in the
README, is:

* The key, relative to the mount's directory, is split at each ``/`` that has a
  non-``/`` character on both sides. Any other ``/`` (leading, trailing or doubled)
  stays inside a name, as ``%2F``.
* In each name, ``%``, ``/``, control characters and DEL are percent-encoded
  (``%25``, ``%2F``, ``%0A``...), and so is each byte that is not valid UTF-8 (``%80`` to
  ``%FF``; Python carries it as a surrogate escape). A name that is ``.`` or ``..`` is written ``%2E`` or
  ``%2E%2E``. Percent-decoding each name and joining with ``/`` gives the key back.
* A ``.gz`` suffix is dropped from file names (``--raw`` keeps it). When the shorter
  name is taken (``a.log`` beside ``a.log.gz``), the file keeps its ``.gz``.
* A name that is still taken (by a reserved root name such as ``stream``, or by a file
  and a directory of the same name, ``d`` beside ``d/e``) has its first plain character
  percent-encoded (``stream`` becomes ``%73tream``), which still decodes to the same
  name. The first of the two in stream order keeps the plain name.
* A name longer than 255 bytes keeps its first 200 bytes, then ``%~`` and 16 hex digits
  of the SHA-256 of the full name. ``%~`` is not percent-encoding, so such a name never
  collides with another.

Names are assigned once, in stream order, and never change during a mount. No name is
ever ``.``, ``..``, empty or contains ``/``, so no key can lead outside the mount.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field

NAME_MAX = 255
_TRUNCATED_KEEP = 200
_SPLIT = re.compile(r"(?<=[^/])/(?=[^/])")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f%/\udc80-\udcff]")
"""Percent-encoded in names: controls, DEL, ``%``, ``/``, and the surrogate escapes that stand for
bytes that are not valid UTF-8 (each becomes its byte, ``%80`` to ``%FF``): names reach the kernel
as UTF-8, which cannot carry a lone surrogate."""


def split_key(relative_key: str) -> list[str]:
    """The raw names along a key: split only at ``/`` between two non-``/`` characters."""
    return _SPLIT.split(relative_key) if relative_key else [""]


def encode_name(raw: str) -> str:
    """Percent-encode one raw name so that it is a safe, reversible path component."""
    if raw in (".", ".."):
        return "%2E" * len(raw)
    if raw == "":
        return "%00"  # only a key equal to the mount directory itself; S3 keys hold no NUL
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogateescape")), raw)


def _encode_first_plain_char(name: str) -> str | None:
    """``name`` with its first not-yet-encoded character percent-encoded, if any is left."""
    index = 0
    while index < len(name) and name[index] == "%":
        index += 3
    if index >= len(name):
        return None
    encoded = "".join(f"%{b:02X}" for b in name[index].encode())
    return name[:index] + encoded + name[index + 1 :]


def _head(name: str) -> str:
    """The first bytes of a long name, never cutting a character or an escape in half."""
    head = name.encode()[:_TRUNCATED_KEEP].decode("utf-8", "ignore")
    cut = head.rfind("%", len(head) - 2)
    return head[:cut] if cut >= 0 else head


def _fit_length(name: str, raw: str) -> str:
    if len(name.encode()) <= NAME_MAX:
        return name
    digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{_head(name)}%~{digest}"


@dataclass
class DirNode:
    """A directory of the mount."""

    ino: int
    name: str
    parent_ino: int
    children: dict[str, DirNode | FileNode] = field(default_factory=dict)
    subdirs: dict[str, DirNode] = field(default_factory=dict)  # raw name -> node
    mtime: float = 0.0
    order: list[DirNode | FileNode] = field(default_factory=list)
    """The children in the order they came: append-only, so a position is a stable readdir offset."""

    def add_child(self, node: DirNode | FileNode) -> None:
        self.children[node.name] = node
        self.order.append(node)


@dataclass
class FileNode:
    """A per-key file of the mount."""

    ino: int
    name: str
    key: str


class Tree:
    """The directory tree of one mount. Thread-safe; names never change once given."""

    def __init__(self, dir_prefix: str, drop_gz: bool, reserved_root_names: set[str], first_ino: int) -> None:
        self.dir_prefix = dir_prefix
        self.drop_gz = drop_gz
        self._next_ino = first_ino
        self.root = DirNode(ino=1, name="", parent_ino=1)
        self._reserved = set(reserved_root_names)
        self._by_path: dict[str, DirNode | FileNode] = {"/": self.root}
        self._path_of_key: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, key: str, mtime: float) -> FileNode:
        """Place ``key`` in the tree and return its file node."""
        with self._lock:
            raw_names = split_key(key[len(self.dir_prefix) :])
            parent, path = self.root, ""
            for raw in raw_names[:-1]:
                parent.mtime = max(parent.mtime, mtime)
                parent = self._subdir(parent, raw, path)
                path = f"{path}/{parent.name}"
            parent.mtime = max(parent.mtime, mtime)
            name = self._free_name(parent, self._file_names(raw_names[-1]), raw_names[-1])
            node = FileNode(ino=self._take_ino(), name=name, key=key)
            parent.add_child(node)
            self._by_path[f"{path}/{name}"] = node
            self._path_of_key[key] = f"{path}/{name}"
            return node

    def lookup(self, path: str) -> DirNode | FileNode | None:
        return self._by_path.get(path)

    def path_of(self, key: str) -> str | None:
        return self._path_of_key.get(key)

    def _subdir(self, parent: DirNode, raw: str, parent_path: str) -> DirNode:
        existing = parent.subdirs.get(raw)
        if existing is not None:
            return existing
        name = self._free_name(parent, [encode_name(raw)], raw)
        node = DirNode(ino=self._take_ino(), name=name, parent_ino=parent.ino)
        parent.subdirs[raw] = node
        parent.add_child(node)
        self._by_path[f"{parent_path}/{name}"] = node
        return node

    def _file_names(self, raw: str) -> list[str]:
        """Preferred names of a file, best first: without ``.gz``, then as stored."""
        if self.drop_gz and raw.endswith(".gz") and len(raw) > 3:
            return [encode_name(raw[:-3]), encode_name(raw)]
        return [encode_name(raw)]

    def _free_name(self, parent: DirNode, preferred: list[str], raw: str) -> str:
        def taken(name: str) -> bool:  # a lookup, not a set of all names: adding n keys stays O(n)
            return name in parent.children or (parent is self.root and name in self._reserved)

        for name in preferred:
            fitted = _fit_length(name, raw)
            if not taken(fitted):
                return fitted
        candidate: str | None = preferred[0]
        while candidate is not None:
            candidate = _encode_first_plain_char(candidate)
            if candidate is not None and not taken(_fit_length(candidate, raw)):
                return _fit_length(candidate, raw)
        digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        candidate, suffix = f"{_head(preferred[0])}%~{digest}", 0
        while taken(f"{candidate}{suffix or ''}"):
            suffix += 1
        return f"{candidate}{suffix or ''}"

    def _take_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino
