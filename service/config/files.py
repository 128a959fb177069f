"""Reading a file the configuration names, but only a regular file of a sensible size.

A path in a cohort or pairings file may point anywhere: at a named pipe (opening it
blocks), a device (/dev/zero never ends), a folder, or a file under /proc that looks
regular but holds the process's environment. Each is refused with a reason that never
quotes the file, and a named pipe is refused without being opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .limits import SYSTEM_FOLDERS


class Unusable(ValueError):
    """Why a file will not be read: a sentence such as 'is not a regular file (a folder)'."""


class Missing(Unusable):
    """There is no file at the path."""


def check(path: Path, limit: int) -> Path:
    """The resolved path, if it names a regular file of at most `limit` bytes outside the
    system folders; Unusable (Missing if nothing is there) otherwise. Only looks (stat)."""
    if "\0" in str(path):
        raise Unusable("cannot be read: its name contains a NUL character")
    try:
        real = path.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of symbolic links, say
        raise Unusable("cannot be read: its path cannot be followed") from None
    for folder in SYSTEM_FOLDERS:
        if real == Path(folder) or Path(folder) in real.parents:
            raise Unusable(f"is not a regular file (it is under {folder}, which holds system data)")
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise Missing("file not found") from None
    except OSError as exc:
        raise Unusable(f"cannot be read: {exc.strerror}") from None
    _check_kind(info)
    if info.st_size > limit:
        raise Unusable(f"is {info.st_size:,} bytes; at most {_size(limit)} is allowed")
    return real


def read_bytes(path: Path, limit: int) -> bytes:
    """The file's content, after `check`; never more than `limit` bytes are read."""
    real = check(path, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        # Non-blocking: if a named pipe was swapped in since the check, opening it does not wait.
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise Missing("file not found") from None
    except OSError as exc:
        raise Unusable(f"cannot be read: {exc.strerror}") from None
    try:
        _check_kind(os.fstat(fd))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise Unusable(f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:  # it grew after the check
        raise Unusable(f"is larger than the {_size(limit)} allowed")
    return b"".join(chunks)


def _check_kind(info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    if stat.S_ISDIR(info.st_mode):
        kind = "a folder"
    elif stat.S_ISFIFO(info.st_mode):
        kind = "a named pipe"
    elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        kind = "a device"
    elif stat.S_ISSOCK(info.st_mode):
        kind = "a socket"
    else:
        kind = "not a file"
    raise Unusable(f"is not a regular file ({kind})")


def _size(limit: int) -> str:
    return f"{limit / 1_000_000:g} MB" if limit >= 100_000 else f"{limit:,} bytes"
