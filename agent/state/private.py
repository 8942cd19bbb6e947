"""The state dir belongs to its owner alone: folders 0700, files 0600, whoever made them.

Diffs, history and the audit log are in there, so as ssh does with its keys, a state dir
owned by another user is refused; one of ours that others may read or write is made
private again. Files are opened without following symbolic links, so a link planted by
another user cannot make a root run write to the file it points at.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.state.errors import StateError


def private_dir(path: Path) -> None:
    """Make path (and missing parents) 0700, or check and tighten it; raises StateError."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StateError(f"state dir {path} is not a folder (a symbolic link?): refused")
    if info.st_uid != os.geteuid():
        raise StateError(f"state dir {path} belongs to uid {info.st_uid}, not to this user "
                         f"(uid {os.geteuid()}): refused, as ssh refuses another's key; "
                         "use a state dir of your own")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


def open_private(path: Path, flags: int) -> int:
    """os.open of a file in a private dir: 0600 when made, never through a link."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == 40:  # ELOOP: the name is a symbolic link
            raise StateError(f"{path} is a symbolic link: refused (someone planted it?)") from None
        raise
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return fd
