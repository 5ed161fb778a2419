"""Reading the files fedbearer trusts: regular, bounded, private, and plain YAML.

Every file fedbearer reads from the user's disk (the token cache and its journal, the
remembered profiles, the Nebius CLI's ``config.yaml``) comes through here, because each of
them can be a trap as well as a file:

- **Regular files only, opened without blocking.** ``O_NONBLOCK`` on the open, then
  ``fstat`` of what was opened: a FIFO or a device put at the path (a link to ``/dev/zero``)
  is refused before a byte is read, so it never hangs nor fills the memory.
- **A size cap**, checked while reading: a huge file costs one chunk, not its size.
- **Private, as ssh's** ``StrictModes`` **has it** (:func:`check_private`): the file and every
  directory above it, up to the home directory, must belong to the user (or root) and must
  not be writable by group or others. Anyone who can write the file could plant a token in
  it, or an ``allow_insecure_http: true`` that sends tokens over plain http.
- **YAML without anchors, aliases or deep nesting** (:func:`load_yaml`): an alias chain
  ("billion laughs") expands exponentially, and nesting deeper than any real file needs only
  serves to exhaust the stack. No file fedbearer reads needs either.

Failures are :class:`FileRefused`, a :class:`~fedbearer.ConfigurationError` that names the
file and what fixes it; the token cache turns it into a warning and a miss. Nothing here
puts a file's content into a message.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any, Optional

import yaml

from ._exceptions import ConfigurationError

#: Deepest nesting of mappings and lists accepted in a YAML file. The deepest real one
#: (a profile's ``params`` in ``profiles.yaml``) nests four levels; other tools' keys in
#: the shared files get room to spare, far below what would strain Python's stack.
MAX_YAML_DEPTH = 32

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 65536


class FileRefused(ConfigurationError):
    """A file fedbearer will not use. ``kind`` names the fault (the token cache warns once
    per kind), ``reason`` says what is wrong and what fixes it, without the file's path;
    the message is ``<path> <reason>``."""

    def __init__(self, path: str, kind: str, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.kind = kind
        self.reason = reason


# --------------------------------------------------------------------------- opening, reading


def open_regular(path: str, flags: int = os.O_RDONLY, *, follow: bool = True) -> int:
    """Open ``path`` (``flags`` plus close-on-exec and non-blocking) and check that it is a
    regular file; the descriptor, else :class:`FileRefused` (``not-regular``).

    ``O_NONBLOCK`` makes the open of a FIFO return at once instead of waiting for a writer;
    it changes nothing for a regular file. ``follow=False`` refuses a symbolic link at the
    last component (``OSError``, as ``O_NOFOLLOW`` reports it). ``OSError`` (including
    ``FileNotFoundError``) is the caller's to handle.
    """
    flags |= _O_CLOEXEC | _O_NONBLOCK | (0 if follow else _O_NOFOLLOW)
    fd = os.open(path, flags, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRefused(
                path, "not-regular", "is not a regular file (a FIFO, device or directory)"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, path: str, limit: int) -> bytes:
    """All of the open file from its start, or :class:`FileRefused` (``too-large``) as soon
    as it passes ``limit`` bytes: at most one chunk more than ``limit`` is ever read."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise FileRefused(
                path, "too-large", f"is larger than {_size(limit)}, far beyond any such file"
            )
        chunks.append(chunk)


def read_private(path: str, limit: int, *, follow: bool = True) -> Optional[bytes]:
    """The content of the private regular file ``path``; ``None`` when there is no file.

    Raises :class:`FileRefused` when it is not a regular file, larger than ``limit`` bytes,
    or not private (:func:`check_private`); ``OSError`` other than a missing file is the
    caller's to report.
    """
    try:
        fd = open_regular(path, follow=follow)
    except FileNotFoundError:
        return None
    try:
        check_private(path, os.fstat(fd))
        return read_fd(fd, path, limit)
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit // (1 << 20)} MiB" if limit >= 1 << 20 else f"{limit // 1024} KiB"


# --------------------------------------------------------------------------- ownership, mode


def check_private(path: str, st: os.stat_result) -> None:
    """Refuse a file others could have written, as ssh's ``StrictModes`` does.

    ``st`` is the ``fstat`` of the open file (so the file checked is the file read). It must
    belong to the user (the effective uid) or to root, and must not be writable by group or
    others. So must each directory above it (of its real path, symbolic links resolved),
    from its own up to and including the home directory, as ssh checks; for a file outside
    the home directory, up to ``/``. The walk ends early at a sticky directory owned by
    root or the user, such as ``/tmp``: there only an entry's owner may rename or remove
    it, and the entry below it has been checked already. A directory others may write
    could swap the file for theirs. Not on Windows, where these bits mean nothing (the
    profile directory's ACL protects the files).

    :class:`FileRefused` kinds: ``owner``, ``mode``, ``dir-owner``, ``dir-mode``; the reason
    gives the ``chown`` or ``chmod`` that fixes it.
    """
    if os.name != "posix":
        return
    uid = os.geteuid()
    _check_entry(path, path, st, uid, "")
    home = os.path.realpath(os.path.expanduser("~"))
    directory = os.path.dirname(os.path.realpath(path))
    while True:
        dst = os.stat(directory)
        if dst.st_mode & stat.S_ISVTX and dst.st_uid in (uid, 0) and directory != home:
            return  # a sticky directory (/tmp): others cannot replace what is in it
        _check_entry(path, directory, dst, uid, "dir-")
        parent = os.path.dirname(directory)
        if directory == home or parent == directory:
            return
        directory = parent


def _check_entry(path: str, entry: str, st: os.stat_result, uid: int, kind: str) -> None:
    # "<path> is ..." for the file, "<path> is in the directory <dir>, which is ..." above it.
    subject = f"is in the directory {entry}, which is" if kind else "is"
    if st.st_uid not in (uid, 0):
        raise FileRefused(
            path,
            kind + "owner",
            f"{subject} owned by another user (uid {st.st_uid}), who could have put anything "
            f"in it; refusing to use it (if it is yours: chown {uid} {entry})",
        )
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        raise FileRefused(
            path,
            kind + "mode",
            f"{subject} writable by group or others (mode {mode:04o}), who could have put "
            f"anything in it; refusing to use it (fix: chmod go-w {entry})",
        )


# --------------------------------------------------------------------------- YAML


# Why a composer of our own: PyYAML's loaders expand aliases (an alias chain in a few hundred
# bytes becomes billions of list items) and compose recursively (deep nesting raises
# RecursionError, and LibYAML's C composer recurses on the C stack). Overriding
# get_single_node keeps everything else of the safe loader (its scanner and parser, tag
# resolution, SafeConstructor) and builds the node tree with an explicit stack from the
# parser's events, refusing an anchor or alias the moment it appears and nesting beyond
# MAX_YAML_DEPTH, before anything is expanded. The parser's events come from LibYAML's C
# parser when PyYAML has it (CSafeLoader exposes the same event interface), so the speed of
# the C loader is kept: a cached `fedbearer token` parses the cache file on every call.
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _PlainLoader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader, composing without anchors, aliases or deep nesting."""

    def get_single_node(self) -> Optional[yaml.Node]:
        self.get_event()  # StreamStartEvent
        node = None
        if not self.check_event(yaml.StreamEndEvent):
            node = self._compose_document()
        if not self.check_event(yaml.StreamEndEvent):
            raise _Refused("corrupt", "holds more than one YAML document")
        self.get_event()
        return node

    def _compose_document(self) -> yaml.Node:
        self.get_event()  # DocumentStartEvent
        # Open collections, innermost last; for a mapping, the key awaiting its value.
        stack: list[tuple[yaml.Node, Optional[yaml.Node]]] = []
        while True:
            event = self.get_event()
            # LibYAML's marks are another class than PyYAML's; nodes take either.
            start: Any = event.start_mark
            end: Any = event.end_mark
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused(
                    "yaml-alias",
                    "uses YAML anchors or aliases (&, *), which no such file needs; "
                    "write the values out",
                )
            node: yaml.Node
            if isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, start, end, style=event.style)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= MAX_YAML_DEPTH:
                    raise _Refused(
                        "too-deep",
                        f"nests deeper than {MAX_YAML_DEPTH} levels, far beyond any such file",
                    )
                sequence = isinstance(event, yaml.SequenceStartEvent)
                kind = yaml.SequenceNode if sequence else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(kind, None, event.implicit)
                stack.append(
                    (
                        kind(tag, [], start, None, flow_style=event.flow_style),
                        None,
                    )
                )
                continue
            else:  # SequenceEndEvent or MappingEndEvent: the collection is complete
                node, _key = stack.pop()
                node.end_mark = end
            if not stack:
                self.get_event()  # DocumentEndEvent
                return node
            parent, key = stack[-1]
            if isinstance(parent, yaml.SequenceNode):
                parent.value.append(node)
            elif key is None:
                stack[-1] = (parent, node)
            else:
                parent.value.append((key, node))
                stack[-1] = (parent, None)


def load_yaml(data: bytes, path: str) -> Any:
    """The one YAML document in ``data`` as plain Python values (``None`` when blank).

    :class:`FileRefused` when it is not valid YAML (``corrupt``; never the parser's message,
    which quotes the file's content: a line number at most), uses anchors or aliases
    (``yaml-alias``) or nests deeper than :data:`MAX_YAML_DEPTH` (``too-deep``).
    """
    loader = _PlainLoader(data)
    try:
        return loader.get_single_data()
    except _Refused as refused:
        raise FileRefused(path, refused.kind, refused.reason) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise FileRefused(path, "corrupt", f"is not valid YAML{where}") from None
    except (ValueError, TypeError, OverflowError):
        # A constructor's own error (an impossible date, an unhashable key).
        raise FileRefused(path, "corrupt", "is not valid YAML") from None
    finally:
        with contextlib.suppress(Exception):
            loader.dispose()


class _PlainDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The safe dumper, never writing an anchor: what :func:`load_yaml` would refuse."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(doc: Any) -> bytes:
    """``doc`` as block-style YAML (UTF-8), keys in their order, without anchors."""
    text: str = yaml.dump(
        doc, Dumper=_PlainDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
    return text.encode("utf-8")
