"""Mail archives on disk: .mbox files, Maildir folders (recursively), .eml files and directories.

A streaming walk: one message's bytes at a time, never a whole mailbox in memory. Each message
comes with the folder it sits in (the Maildir folder, the mbox file's name, the .eml's directory)
and a stable id within it, so a re-import recognises what it has seen.

Folder names: the root of a Maildir is "INBOX"; Maildir++ subfolders (".Sent", ".Archive.2024")
become "Sent", "Archive/2024"; other nested directories keep their relative path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_MESSAGE_BYTES = 200 * 1024 * 1024
TOO_LARGE_KEEP = 1024 * 1024  # of a message over the cap, for the quarantine
MAILDIR_SUBDIRS = ("cur", "new")
ICS_SUFFIXES = (".ics", ".ical", ".ifb")


@dataclass(frozen=True, slots=True)
class RawMessage:
    raw: bytes
    folder: str
    provider_id: str
    kind: str = "mail"  # "mail", or "calendar" for .ics files
    too_large: bool = False  # raw holds only the beginning of a message over the size cap
    # A message in a file of its own may travel as its path: the parse worker reads it, so the
    # bytes cross no process boundary (reading and pickling them in the importing process cost
    # more than parsing them elsewhere saved).
    path: str | None = None

    def loaded(self) -> RawMessage | Unreadable:
        """This message with its bytes (read from `path` if they were left there)."""
        if self.path is None:
            return self
        try:
            raw, too_large = _read_capped(self.path)
        except OSError as exc:
            return Unreadable(self.path, exc.strerror or str(exc))
        return RawMessage(raw, self.folder, self.provider_id, self.kind, too_large)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A path that is not an archive Rapport reads (said in the import summary)."""

    path: str
    reason: str


def _is_maildir(path: Path) -> bool:
    return any((path / sub).is_dir() for sub in MAILDIR_SUBDIRS)


def _looks_like_mbox(path: Path) -> bool:
    if path.suffix.lower() in {".mbox", ".mbx"}:
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


def _maildir_folder(root: Path, folder: Path) -> str:
    if folder == root:
        return "INBOX"
    relative = folder.relative_to(root).as_posix()
    if relative.startswith(".") and "/" not in relative:
        return relative[1:].replace(".", "/")
    return relative


def _maildir_id(name: str) -> str:
    """A Maildir file's unique part: the flags after ':2,' change when a message is read."""
    return name.split(":", 1)[0].split("!", 1)[0]


@dataclass
class FileWalk:
    """Everything found under the given paths, in a stable order."""

    paths: Sequence[Path]

    def entries(self) -> Iterator[tuple[str, Path, Path] | Unreadable]:
        """(kind, file or folder, root) where kind is mbox, maildir, eml or ics."""
        for given in self.paths:
            path = Path(given)
            if not path.exists():
                yield Unreadable(str(path), "no such file or directory")
            elif path.is_file():
                yield from self._file_entry(path, path.parent)
            elif _is_maildir(path):
                yield from self._dir_entries(path, path)
            else:
                yield from self._dir_entries(path, path)

    def _file_entry(self, path: Path, root: Path) -> Iterator[tuple[str, Path, Path] | Unreadable]:
        suffix = path.suffix.lower()
        if suffix == ".eml":
            yield ("eml", path, root)
        elif suffix in ICS_SUFFIXES:
            yield ("ics", path, root)
        elif _looks_like_mbox(path):
            yield ("mbox", path, root)
        else:
            yield Unreadable(str(path), "not an .mbox, .eml or .ics file, nor a Maildir folder")

    def _dir_entries(self, top: Path, root: Path) -> Iterator[tuple[str, Path, Path] | Unreadable]:
        for current, dirs, files in os.walk(top):
            dirs.sort()
            here = Path(current)
            if _is_maildir(here):
                yield ("maildir", here, root)
                dirs[:] = [d for d in dirs if d not in ("cur", "new", "tmp")]
            for name in sorted(files):
                if here.name in ("cur", "new", "tmp") and _is_maildir(here.parent):
                    continue
                suffix = Path(name).suffix.lower()
                if suffix == ".eml" or suffix in ICS_SUFFIXES or suffix in {".mbox", ".mbx"}:
                    if (here / name).is_file():
                        yield from self._file_entry(here / name, root)
                    else:  # a FIFO would block the import, a device never end
                        yield Unreadable(str(here / name), "not a regular file")

    def messages(self, *, by_path: bool = False) -> Iterator[RawMessage | Unreadable]:
        """Every message; with `by_path`, messages in files of their own carry only their path
        (see `RawMessage.loaded`)."""
        for entry in self.entries():
            if isinstance(entry, Unreadable):
                yield entry
                continue
            kind, path, root = entry
            if kind == "maildir":
                yield from _maildir_messages(path, _maildir_folder(root, path), by_path=by_path)
            elif kind == "mbox":
                yield from _mbox_messages(path, _relative(root, path))
            else:
                folder = _relative(root, path.parent) or path.parent.name
                yield _single_file(path, folder, "calendar" if kind == "ics" else "mail")

    def count(self) -> int:
        """How many messages `messages()` will yield (a fast scan, for progress bars)."""
        total = 0
        for entry in self.entries():
            if isinstance(entry, Unreadable):
                continue
            kind, path, _ = entry
            if kind == "maildir":
                total += sum(
                    len(os.listdir(path / sub)) for sub in MAILDIR_SUBDIRS if (path / sub).is_dir()
                )
            elif kind == "mbox":
                total += _count_mbox(path)
            else:
                total += 1
        return total


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix().strip(".") or path.name
    except ValueError:
        return path.name


def _read_capped(path: str | Path) -> tuple[bytes, bool]:
    """The file's bytes, or its first megabyte when it is over the size cap.

    Unbuffered and sized from fstat: `read(cap)` on a buffered file allocates the whole cap
    (200 MB) for every message before shrinking it, which cost three times the read itself.
    """
    with open(path, "rb", buffering=0) as fh:
        if os.fstat(fh.fileno()).st_size <= MAX_MESSAGE_BYTES:
            data = fh.readall()
            if len(data) <= MAX_MESSAGE_BYTES:
                return data, False
            return data[:TOO_LARGE_KEEP], True  # it grew while we looked
    with open(path, "rb") as fh:
        return fh.read(TOO_LARGE_KEEP), True


def _single_file(path: Path, folder: str, kind: str) -> RawMessage | Unreadable:
    try:
        raw, too_large = _read_capped(path)
    except OSError as exc:
        return Unreadable(str(path), exc.strerror or str(exc))
    return RawMessage(raw, folder, path.name, kind, too_large)


def _maildir_messages(
    folder_path: Path, folder: str, *, by_path: bool = False
) -> Iterator[RawMessage | Unreadable]:
    for sub in MAILDIR_SUBDIRS:
        directory = folder_path / sub
        if not directory.is_dir():
            continue
        # scandir knows regular files from the directory itself: no stat per message.
        with os.scandir(directory) as scan:
            names = sorted((entry.name, entry.path) for entry in scan if entry.is_file())
        for name, path in names:
            if by_path:
                yield RawMessage(b"", folder, _maildir_id(name), "mail", path=path)
                continue
            try:
                raw, too_large = _read_capped(path)
            except OSError as exc:
                yield Unreadable(str(path), exc.strerror or str(exc))
                continue
            yield RawMessage(raw, folder, _maildir_id(name), "mail", too_large)


def _mbox_messages(path: Path, folder: str) -> Iterator[RawMessage | Unreadable]:
    """Split an mbox on its "From " separator lines, one message in memory at a time.

    Like Python's `mailbox.mbox` (the mboxo/mboxrd convention), any line starting with "From "
    starts a message; bodies quote such lines as ">From ". Over-long messages keep their first
    megabyte (headers and the start of the body) and are flagged too large.
    """
    index = 0
    parts: list[bytes] = []
    size = 0
    truncated = False
    try:
        fh = path.open("rb")
    except OSError as exc:
        yield Unreadable(str(path), exc.strerror or str(exc))
        return
    with fh:
        for line in fh:
            if line.startswith(b"From "):
                if parts or index:
                    yield _mbox_message(parts, folder, index, truncated)
                    index += 1
                parts, size, truncated = [], 0, False
                continue
            size += len(line)
            if size <= MAX_MESSAGE_BYTES:
                parts.append(line)
            elif not truncated:
                truncated = True
                parts = [b"".join(parts)[:TOO_LARGE_KEEP]]
        if parts:
            yield _mbox_message(parts, folder, index, truncated)


def _mbox_message(parts: list[bytes], folder: str, index: int, truncated: bool) -> RawMessage:
    raw = b"".join(parts)
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n\n"):
        raw = raw[:-1]  # the blank line that separates messages is not part of the message
    return RawMessage(raw, folder, f"{folder}#{index}", "mail", truncated)


def _count_mbox(path: Path) -> int:
    count = 0
    with path.open("rb") as fh:
        for line in fh:
            if line.startswith(b"From "):
                count += 1
    return count
