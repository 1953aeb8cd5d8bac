"""The graded kernel's working folder, as the grader handles it: what goes into the sandbox, what comes back out,
and what is removed before nbgrader writes the graded notebook and copies the folder into the feedback.

Links are never followed: a kernel can leave a symbolic link to ``solutions/``, the gradebook or another student's
notebook, or a hard link to one of them (without bubblewrap), and nbgrader would copy, re-permission or overwrite
its target. Only regular files and folders are copied, each opened without following a link, and only so many.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

MB = 1024**2
MAX_FILES = 1000  # files (and folders) kept of what a kernel leaves in its folder
MAX_DEPTH = 16    # folders deeper than this are not copied
NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
KINDS = {stat.S_IFLNK: "a link", stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
         stat.S_IFBLK: "a device"}


def kind(mode: int, links: int = 1) -> str:
    """What a file that is not kept is, in words ("" for a regular file with one name, or a folder)."""
    if stat.S_ISREG(mode):
        return "" if links == 1 else "a hard link"
    return "" if stat.S_ISDIR(mode) else KINDS.get(stat.S_IFMT(mode), "a special file")


def _entries(top_fd: int):
    """(its folder's fd, name, relative path, lstat, its folder's depth) of each entry under ``top_fd``, sorted,
    never through a link, no deeper than MAX_DEPTH (fwalk checks each folder it enters is the one it listed)."""
    for folder, dirs, _, fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
        depth = folder.count(os.sep)
        if depth >= MAX_DEPTH:
            dirs.clear()
        names = []
        with contextlib.suppress(OSError):
            names = sorted(os.listdir(fd))
        for name in names:
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # gone since listed
            yield fd, name, os.path.normpath(os.path.join(folder, name)), info, depth


def _open_folder(folder: Path) -> int | None:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    except OSError:
        return None


def seeds(folder: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The folders and regular files under ``folder`` to copy into the kernel's private working folder: relative
    folder paths, and (relative path, an open descriptor, its mode) for each file (the caller closes them). Links
    and special files are left out."""
    folders, files, top = [], [], _open_folder(folder)
    if top is None:
        return folders, files
    try:
        for fd, name, path, info, depth in _entries(top):
            if len(files) + len(folders) >= MAX_FILES:
                break
            if stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
                folders.append(path)
            elif not kind(info.st_mode, info.st_nlink) and stat.S_ISREG(info.st_mode):
                with contextlib.suppress(OSError):
                    files.append((path, os.open(name, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW, dir_fd=fd),
                                  stat.S_IMODE(info.st_mode)))
    finally:
        os.close(top)
    return folders, files


def open_beneath(root: str, path: Path) -> int:
    """An fd of the folder ``path`` seen from ``root`` (a process's ``/proc/<pid>/root``), each step taken without
    following a link: a kernel that swaps a folder on the way for a link leads nowhere."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in Path(path).parts[1:]:
            step = os.open(part, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = step
        return fd
    except OSError:
        os.close(fd)
        raise


def harvest(source_fd: int, target: Path, budget: int) -> list[str]:
    """Copy what the kernel left in its folder (``source_fd``) into ``target``: regular files and folders only,
    never over a file already there, at most ``budget`` bytes and MAX_FILES entries. What was not kept, in words."""
    left, count, dropped = budget, 0, Dropped()
    targets = {".": os.open(target, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)}
    try:
        for fd, name, path, info, depth in _entries(source_fd):
            into = targets.get(os.path.dirname(path) or ".")
            what = kind(info.st_mode, info.st_nlink)
            if into is None:
                continue  # its folder was not kept
            if what:
                dropped.name(path, what)
            elif count >= MAX_FILES:
                dropped.count(f"over the {MAX_FILES} files kept", info.st_size)
            elif stat.S_ISDIR(info.st_mode) and depth >= MAX_DEPTH:
                dropped.count(f"in folders nested deeper than {MAX_DEPTH}")
            elif stat.S_ISREG(info.st_mode) and info.st_size > left:
                dropped.count(f"over the {budget / MB:g} MB kept", info.st_size)
            elif stat.S_ISDIR(info.st_mode):
                count += 1
                with contextlib.suppress(OSError):
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=into)
                    targets[path] = os.open(name, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=into)
            else:
                count += 1
                left -= _copy(name, fd, into, stat.S_IMODE(info.st_mode) & 0o755 | 0o600, info.st_size)
    finally:
        for fd in targets.values():
            os.close(fd)
    return dropped.said()


class Dropped:
    """What was not kept, in words: links and special files by name (the first 20), the rest counted by why."""

    def __init__(self):
        self.named, self.more, self.counted = [], 0, {}

    def name(self, path: str, what: str) -> None:
        if len(self.named) < 20:
            self.named.append(f"{path} ({what})")
        else:
            self.more += 1

    def count(self, why: str, size: int = 0) -> None:
        files, total = self.counted.get(why, (0, 0))
        self.counted[why] = (files + 1, total + size)

    def said(self) -> list[str]:
        return self.named + ([f"and {self.more} more"] if self.more else []) + [
            f"{files} file(s) of {total / MB:.1f} MB {why}" for why, (files, total) in self.counted.items()]


def _copy(name: str, from_fd: int, to_fd: int, mode: int, size: int) -> int:
    """Copy the regular file ``name`` between folders, up to ``size`` bytes; the bytes copied (0 if not copied)."""
    try:
        source = os.open(name, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW, dir_fd=from_fd)
    except OSError:
        return 0
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            return 0
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode, dir_fd=to_fd)
    except OSError:
        os.close(source)
        return 0
    copied = 0
    try:
        while copied < size and (chunk := os.read(source, min(1 << 20, size - copied))):
            os.write(target, chunk)
            copied += len(chunk)
    except OSError:
        pass
    finally:
        os.close(source)
        os.close(target)
    return copied


def snapshot(folder: Path) -> set[str]:
    """The relative paths under ``folder`` now (what nbgrader put there before the kernel ran)."""
    top = _open_folder(folder)
    if top is None:
        return set()
    try:
        return {path for _, _, path, _, _ in _entries(top)}
    finally:
        os.close(top)


def sweep(folder: Path, before: set[str], budget: int) -> list[str]:
    """Remove from ``folder`` every link (symbolic or hard), pipe, socket and device, and what the kernel wrote
    there (paths not in ``before``) past ``budget`` bytes, MAX_FILES files or MAX_DEPTH folders; what was removed,
    in words. Run after the kernel has ended, before nbgrader writes into the folder or copies it."""
    removed, left, count, top = Dropped(), budget, 0, _open_folder(folder)
    if top is None:
        return []
    try:
        for fd, name, path, info, depth in _entries(top):
            what = kind(info.st_mode, info.st_nlink)
            if stat.S_ISDIR(info.st_mode) and depth >= MAX_DEPTH and path not in before:
                try:  # below the depth walked: the folder goes whole (rmtree follows no link)
                    shutil.rmtree(name, dir_fd=fd)
                    removed.count(f"in folders nested deeper than {MAX_DEPTH}")
                except (OSError, RecursionError):
                    removed.name(path, "folders nested too deep to remove")
            elif what:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
                    removed.name(path, what)
            elif stat.S_ISREG(info.st_mode) and path not in before:
                count += 1
                if count <= MAX_FILES and info.st_size <= left:
                    left -= info.st_size
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
                    removed.count(f"over the {budget / MB:g} MB or {MAX_FILES} files kept", info.st_size)
    finally:
        os.close(top)
    return removed.said()
