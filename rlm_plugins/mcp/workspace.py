"""A read-only view of one or more root directories, confined against escapes, with opaque file handles.

Every path a client names is resolved (symlinks included) and must land inside a root; absolute paths, `..`
components, device files, sockets and FIFOs are refused. Clients only ever see workspace-relative names such as
`src/app.py` (or `1:src/app.py` when there are several roots), never host paths.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rlm_plugins.errors import WorkspaceError

MAX_READ_LINES = 200
MAX_READ_BYTES = 8 * 1024
MAX_LIST_ENTRIES = 500
MAX_OPEN_MATCHES = 200
_MAX_HANDLES = 10_000


@dataclass(frozen=True)
class FileRef:
    """A confined, regular file: its workspace-relative name and its resolved host path (never shown)."""

    name: str
    path: Path
    size: int


class Workspace:
    """The roots a gateway exposes, and the handles it has given out.

    Args:
        roots: directories to expose; each is resolved once at start.

    Raises:
        WorkspaceError: a root is not an existing directory.
    """

    def __init__(self, roots: list[str | os.PathLike[str]]) -> None:
        if not roots:
            raise WorkspaceError("give at least one workspace root directory (e.g. --root .)")
        self.roots: list[Path] = []
        for root in roots:
            resolved = Path(root).expanduser().resolve()
            if not resolved.is_dir():
                raise WorkspaceError(f"workspace root {str(root)!r} is not a directory; pass an existing directory")
            self.roots.append(resolved)
        self._handles: dict[str, FileRef] = {}

    def _split(self, name: str) -> tuple[Path, str]:
        """The root a client name refers to, and the rest of the name."""
        if len(self.roots) > 1 and ":" in name.split("/", 1)[0]:
            index, _, rest = name.partition(":")
            if index.isdigit() and int(index) < len(self.roots):
                return self.roots[int(index)], rest
            raise WorkspaceError(f"{name!r} names no workspace root; prefix names with 0: to {len(self.roots) - 1}:")
        return self.roots[0], name

    def _public(self, root: Path, path: Path) -> str:
        rel = path.relative_to(root).as_posix()
        rel = "." if rel in ("", ".") else rel
        return f"{self.roots.index(root)}:{rel}" if len(self.roots) > 1 else rel

    def resolve(self, name: str) -> tuple[Path, Path]:
        """(root, resolved path) for a client-given relative name, refusing anything that leaves the root."""
        if not isinstance(name, str) or "\x00" in name:
            raise WorkspaceError("a path must be a string without NUL bytes")
        root, rest = self._split(name.strip() or ".")
        pure = PurePosixPath(rest)
        if pure.is_absolute() or rest.startswith("~"):
            raise WorkspaceError(f"{name!r} is absolute; give a path relative to the workspace root")
        if ".." in pure.parts:
            raise WorkspaceError(f"{name!r} contains '..'; paths may not leave the workspace")
        resolved = (root / pure).resolve()
        if resolved != root and root not in resolved.parents:
            raise WorkspaceError(f"{name!r} resolves outside the workspace (a symlink that leaves it?)")
        return root, resolved

    def file(self, name: str) -> FileRef:
        """A confined regular file by relative name."""
        root, path = self.resolve(name)
        try:
            info = path.stat()
        except OSError:
            raise WorkspaceError(f"{name!r} does not exist in the workspace") from None
        if not stat.S_ISREG(info.st_mode):
            raise WorkspaceError(f"{name!r} is not a regular file (directories, devices, sockets are not opened)")
        return FileRef(self._public(root, path), path, info.st_size)

    def open(self, path_or_glob: str) -> list[tuple[str, FileRef]]:
        """Handles for a file or for the regular files a glob matches (at most MAX_OPEN_MATCHES)."""
        if any(ch in path_or_glob for ch in "*?["):
            refs = self._glob(path_or_glob)
            if not refs:
                raise WorkspaceError(f"no file in the workspace matches {path_or_glob!r}")
        else:
            refs = [self.file(path_or_glob)]
        return [(self._handle_for(ref), ref) for ref in refs]

    def _glob(self, pattern: str) -> list[FileRef]:
        root, rest = self._split(pattern)
        if PurePosixPath(rest).is_absolute() or ".." in PurePosixPath(rest).parts:
            raise WorkspaceError(f"{pattern!r} may not be absolute or contain '..'")
        refs: list[FileRef] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for filename in sorted(filenames):
                rel = Path(dirpath, filename).relative_to(root).as_posix()
                if not fnmatch.fnmatchcase(rel, rest):
                    continue
                try:
                    refs.append(self.file(self._public(root, Path(dirpath, filename))))
                except WorkspaceError:
                    continue
                if len(refs) >= MAX_OPEN_MATCHES:
                    return refs
        return refs

    def _handle_for(self, ref: FileRef) -> str:
        for handle, known in self._handles.items():
            if known.path == ref.path:
                return handle
        if len(self._handles) >= _MAX_HANDLES:
            self._handles.pop(next(iter(self._handles)))
        handle = "h_" + secrets.token_hex(6)
        self._handles[handle] = ref
        return handle

    def handle(self, handle: str) -> FileRef:
        """The file behind a handle, re-checked (it may have been replaced by a symlink since it was opened)."""
        ref = self._handles.get(handle)
        if ref is None:
            raise WorkspaceError(f"unknown handle {handle!r}; call open() first")
        return self.file(ref.name)

    def target(self, handle_or_dir: str) -> tuple[list[FileRef], str]:
        """The files a handle or directory name stands for, and the public name of what was asked."""
        if handle_or_dir.startswith("h_"):
            ref = self.handle(handle_or_dir)
            return [ref], ref.name
        root, path = self.resolve(handle_or_dir)
        if path.is_file():
            ref = self.file(self._public(root, path))
            return [ref], ref.name
        if not path.is_dir():
            raise WorkspaceError(f"{handle_or_dir!r} is neither a handle, a file nor a directory of the workspace")
        refs = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames.sort()
            for filename in sorted(filenames):
                try:
                    refs.append(self.file(self._public(root, Path(dirpath, filename))))
                except WorkspaceError:
                    continue
        return refs, self._public(root, path)

    def list(self, handle_or_dir: str = ".") -> list[dict[str, object]]:
        """Entries of a directory (or the one file behind a handle): name, kind, size."""
        if handle_or_dir.startswith("h_"):
            ref = self.handle(handle_or_dir)
            return [{"name": ref.name, "kind": "file", "size": ref.size}]
        root, path = self.resolve(handle_or_dir)
        if not path.is_dir():
            ref = self.file(handle_or_dir)
            return [{"name": ref.name, "kind": "file", "size": ref.size}]
        entries: list[dict[str, object]] = []
        for child in sorted(path.iterdir()):
            try:
                info = child.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                try:
                    _, target = self.resolve(self._public(root, child))
                    info = target.stat()
                except (WorkspaceError, OSError):
                    continue
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else None
            if kind is None:
                continue
            entries.append({"name": self._public(root, child), "kind": kind, "size": info.st_size})
            if len(entries) >= MAX_LIST_ENTRIES:
                break
        return entries

    def read(self, handle: str, start_line: int = 1, n_lines: int = MAX_READ_LINES) -> dict[str, object]:
        """Lines [start_line, start_line + n_lines) of a file, bounded to 200 lines and 8 KB; never reads it whole."""
        ref = self.handle(handle)
        start = max(1, int(start_line))
        wanted = max(0, min(int(n_lines), MAX_READ_LINES))
        lines: list[str] = []
        used = 0
        truncated = False
        with open(ref.path, "rb") as fh:
            number = 0
            for number, raw in enumerate(_bounded_lines(fh), start=1):
                if number < start:
                    continue
                if len(lines) >= wanted:
                    truncated = True
                    break
                text = raw.decode("utf-8", "replace")
                if used + len(raw) > MAX_READ_BYTES:
                    text = text[: max(0, MAX_READ_BYTES - used)]
                    lines.append(text)
                    truncated = True
                    break
                lines.append(text)
                used += len(raw)
        return {"name": ref.name, "start_line": start, "lines": lines, "truncated": truncated}


def _bounded_lines(fh, max_line: int = MAX_READ_BYTES + 1):  # type: ignore[no-untyped-def]
    """Lines of a binary file, each cut at `max_line` bytes so one endless line cannot fill memory."""
    while True:
        raw = fh.readline(max_line)
        if not raw:
            return
        cut = not raw.endswith(b"\n")
        yield raw.rstrip(b"\n")
        while cut:
            rest = fh.readline(1 << 20)
            cut = bool(rest) and not rest.endswith(b"\n")
