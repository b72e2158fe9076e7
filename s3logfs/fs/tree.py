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
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from ..engine.keystore import HashPositions, ItemView, KeyPositions, KeyStore

NAME_MAX = 255
ROOT_INO = 1
STREAM_INO = 2
BOOKMARKS_INO = 3
FIRST_KEY_INO = 16
"""Inodes below this are the mount's own entries; per-key files and directories count up from it."""
FIRST_CURSOR_INO = 1 << 40
"""Cursor files (``.bookmarks/NAME``) count up from here, far above any key's."""
RECENT_NAMES = 16384
"""How many recently listed or looked-up names the tree keeps at hand (about 3 MB): ``ls -l``
of a directory up to this size decodes each key once, in the listing."""
RESERVED_ROOT_NAMES = frozenset({"stream", ".bookmarks"})
"""Root names of the mount's own entries: a key of that name gets another name."""
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


_DIR_REF = -1
"""Children of a directory are kept as ints: a file's id (0 and up) or ``-1 - n`` for directory n."""


@dataclass(slots=True, eq=False)
class DirNode:
    """A directory of the mount. Directories are few (one per folder), so each is an object."""

    ino: int
    name: str
    parent_ino: int
    tree: Tree = field(repr=False)
    dirs: dict[str, DirNode] = field(default_factory=dict)
    """Name -> subdirectory; files are found through the tree's name table."""
    subdirs: dict[str, DirNode] = field(default_factory=dict)  # raw name -> node
    mtime: float = 0.0
    refs: array = field(default_factory=lambda: array("i"))
    """The children in the order they came, as ints (see ``_DIR_REF``): append-only, so a
    position is a stable readdir offset."""

    @property
    def order(self) -> Sequence[DirNode | FileNode]:
        """The children in the order they came, as nodes made on demand."""
        return _Children(self.tree, self.refs)

    @property
    def children(self) -> dict[str, DirNode | FileNode]:
        """Name -> child, built on demand (for walking the tree; lookups go through the tree)."""
        return {node.name: node for node in self.order}


@dataclass(frozen=True, slots=True)
class FileNode:
    """A per-key file of the mount: a view made on demand, equal to any other of the same file.

    It holds its key's id in the shared key store, not the key: most callers (``stat``,
    ``ls -l``) want only the catalog entry, found by that id with nothing decoded.
    """

    ino: int
    name: str
    key_id: int
    store: KeyStore = field(compare=False, repr=False)
    known_key: str | None = field(default=None, compare=False, repr=False)
    """The key, when making the node decoded it anyway (to name a listed file)."""

    @property
    def key(self) -> str:
        return self.known_key if self.known_key is not None else self.store.key(self.key_id)


class _Children(ItemView["DirNode | FileNode"]):
    """A directory's children as nodes, made when asked for."""

    def __init__(self, tree: Tree, refs: array) -> None:
        self._tree = tree
        self._refs = refs

    def __len__(self) -> int:
        return len(self._refs)

    def _item(self, index: int) -> DirNode | FileNode:
        return self._tree.node_of(self._refs[index])


class Tree:
    """The directory tree of one mount. Thread-safe; names never change once given.

    Files cost no object of their own: a file is an id, with its key (interned in ``keys``),
    inode, parent and name hash in typed arrays. Its name is computed from its key when asked for (the
    key's last component, percent-encoded, ``.gz`` dropped); the few names that the rules
    made otherwise (a collision, a reserved name) are stored. A (directory, name) lookup goes
    through one hash table over all files. With a million keys this spares about 600 bytes
    a key against a node object, a name string and a path string per file.
    """

    def __init__(self, dir_prefix: str, drop_gz: bool, reserved_root_names: AbstractSet[str] = RESERVED_ROOT_NAMES,
                 first_ino: int = FIRST_KEY_INO, keys: KeyStore | None = None) -> None:
        self.dir_prefix = dir_prefix
        self.drop_gz = drop_gz
        self._next_ino = first_ino
        self._dirs: list[DirNode] = []
        self.root = self._new_dir(ino=ROOT_INO, name="", parent_ino=ROOT_INO)
        self._reserved = set(reserved_root_names)
        self.keys = keys if keys is not None else KeyStore(dir_prefix)
        """The mount's keys, interned: the engine's, shared with its catalog and index."""
        self._file_keys = KeyPositions(self.keys)
        """File id -> key: the file ids are positions (the key ids themselves, in a mount)."""
        self._inos = array("q")
        self._parents = array("I")
        self._hashes = array("i")
        self._odd_names: dict[int, str] = {}
        """File id -> name, for the names that are not the default of their key."""
        self._files = HashPositions(lambda file: self._hashes[file])
        self._recent: OrderedDict[tuple[int, str], int] = OrderedDict()
        """(directory inode, name) -> file id of the names listed or looked up lately, oldest
        first: ``ls -l`` looks each name up right after listing it, and a name found here
        costs no key decoded. Names never change, so an entry never goes stale."""
        self._recent_lock = threading.Lock()
        self._lock = threading.Lock()

    def add(self, key: str, mtime: float) -> FileNode:
        """Place ``key`` in the tree and return its file node."""
        with self._lock:
            raw_names = split_key(key[len(self.dir_prefix) :])
            parent = self.root
            for raw in raw_names[:-1]:
                parent.mtime = max(parent.mtime, mtime)
                parent = self._subdir(parent, raw)
            parent.mtime = max(parent.mtime, mtime)
            raw = raw_names[-1]
            preferred = self._file_names(raw)
            name = self._free_name(parent, preferred, raw)
            file = self._file_keys.append(key)
            self._inos.append(self._take_ino())
            self._parents.append(parent.ino)
            hashed = _name_hash(parent.ino, name)
            self._hashes.append(hashed)
            if name != _fit_length(preferred[0], raw):
                self._odd_names[file] = name
            self._files.add(hashed, file)
            parent.refs.append(file)
            return self._file_node(file, name, key)

    def lookup(self, path: str) -> DirNode | FileNode | None:
        """The node at an absolute path (``/`` is the root), or None."""
        if path == "/":
            return self.root
        if not path.startswith("/"):
            return None
        names = path[1:].split("/")
        with self._lock:
            node = self.root
            for name in names[:-1]:
                found = node.dirs.get(name)
                if found is None:
                    return None
                node = found
            return self._child(node, names[-1])

    def path_of(self, key: str) -> str | None:
        """The path of ``key``'s file, or None."""
        with self._lock:
            file = self._file_keys.get(key)
            if file is None:
                return None
            path = ""
            node = self.root
            for raw in split_key(key[len(self.dir_prefix) :])[:-1]:
                node = node.subdirs[raw]
                path = f"{path}/{node.name}"
            return f"{path}/{self._name_of(file)}"

    def node_of(self, ref: int) -> DirNode | FileNode:
        """The node a directory's child reference stands for."""
        if ref < 0:
            return self._dirs[_DIR_REF - ref]
        key = self._key_of(ref)
        name = self._name_from_key(ref, key)
        self._remember(self._parents[ref], name, ref)  # a directory listing is followed by lookups
        return self._file_node(ref, name, key)

    def _file_node(self, file: int, name: str, key: str | None = None) -> FileNode:
        return FileNode(self._inos[file], name, self._file_keys.key_id(file), self.keys, key)

    def _child(self, parent: DirNode, name: str) -> DirNode | FileNode | None:
        found = parent.dirs.get(name)
        if found is not None:
            return found
        file = self._find_file(parent, name)
        return None if file is None else self._file_node(file, name)

    def _find_file(self, parent: DirNode, name: str) -> int | None:
        recent = self._recent.get((parent.ino, name))
        if recent is not None:
            return recent
        hashed = _name_hash(parent.ino, name)
        hashes, parents = self._hashes, self._parents
        file = self._files.find(hashed, lambda file: hashes[file] == hashed and parents[file] == parent.ino
                                and self._name_of(file) == name)
        if file is not None:
            self._remember(parent.ino, name, file)
        return file

    def _remember(self, parent_ino: int, name: str, file: int) -> None:
        with self._recent_lock:
            self._recent[(parent_ino, name)] = file
            if len(self._recent) > RECENT_NAMES:
                self._recent.popitem(last=False)  # a dict's first-key deletion slows as its front empties

    def _name_of(self, file: int) -> str:
        odd = self._odd_names.get(file)
        return odd if odd is not None else self._name_from_key(file, self._key_of(file))

    def _name_from_key(self, file: int, key: str) -> str:
        odd = self._odd_names.get(file)
        if odd is not None:
            return odd
        raw = _leaf(key[len(self.dir_prefix) :])
        return _fit_length(self._file_names(raw)[0], raw)

    def _key_of(self, file: int) -> str:
        return self._file_keys.key(file)

    def _new_dir(self, ino: int, name: str, parent_ino: int) -> DirNode:
        node = DirNode(ino=ino, name=name, parent_ino=parent_ino, tree=self)
        self._dirs.append(node)
        return node

    def _subdir(self, parent: DirNode, raw: str) -> DirNode:
        existing = parent.subdirs.get(raw)
        if existing is not None:
            return existing
        name = self._free_name(parent, [encode_name(raw)], raw)
        node = self._new_dir(ino=self._take_ino(), name=name, parent_ino=parent.ino)
        parent.subdirs[raw] = node
        parent.dirs[name] = node
        parent.refs.append(_DIR_REF - (len(self._dirs) - 1))
        return node

    def _file_names(self, raw: str) -> list[str]:
        """Preferred names of a file, best first: without ``.gz``, then as stored."""
        if self.drop_gz and raw.endswith(".gz") and len(raw) > 3:
            return [encode_name(raw[:-3]), encode_name(raw)]
        return [encode_name(raw)]

    def _free_name(self, parent: DirNode, preferred: list[str], raw: str) -> str:
        def taken(name: str) -> bool:  # a lookup, not a set of all names: adding n keys stays O(n)
            return (name in parent.dirs or self._find_file(parent, name) is not None
                    or (parent is self.root and name in self._reserved))

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


def _name_hash(parent_ino: int, name: str) -> int:
    """31 bits of hash: kept per file in a 4-byte array, and enough for any table's mask."""
    return hash((parent_ino, name)) & 0x7FFFFFFF


def _leaf(relative_key: str) -> str:
    """The last raw name of a key, as ``split_key(relative_key)[-1]`` gives it, without splitting it all."""
    cut = relative_key.rfind("/")
    if cut < 0:
        return relative_key
    if 0 < cut < len(relative_key) - 1 and relative_key[cut - 1] != "/":
        return relative_key[cut + 1 :]
    return split_key(relative_key)[-1]
