"""Temp folders that name their owner: ``<prefix><pid>-<random>``, swept once that process is dead.

A pytest killed with ``kill -9`` (or SIGTERM before its cleanup ran) cannot remove what it made in
the temp folder; the next run that starts an engine or a remote stage removes the folders whose
owner pid no longer exists. A folder whose owner is alive (another run on this machine) is kept.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# every temp folder prefix the plugin uses (deploy's rehearsal and the offline account included)
PREFIXES = ("snowpipe-remote-", "snowpipe_stages_", "snowpipe-rehearsal-", "snowpipe-get-", "pytest-snowpipe-run-",
            "offline-account-")


def owned_prefix(prefix: str) -> str:
    """``prefix`` + this process's pid + ``-``: what :func:`sweep_orphans` reads the owner from."""
    return f"{prefix}{os.getpid()}-"


def make_owned(prefix: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """A new temp folder carrying this process's pid (``tempfile.mkdtemp``)."""
    return Path(tempfile.mkdtemp(prefix=owned_prefix(prefix), dir=folder))


@contextmanager
def owned_temporary_directory(prefix: str) -> Iterator[str]:
    """``tempfile.TemporaryDirectory`` whose name carries this process's pid."""
    with tempfile.TemporaryDirectory(prefix=owned_prefix(prefix)) as tmp:
        yield tmp


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (owned by anyone)."""
    if os.name != "posix":  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def sweep_orphans(prefixes: tuple[str, ...] = PREFIXES) -> list[Path]:
    """Remove the plugin's temp folders whose owner process is gone; return what was removed."""
    try:
        found = [p for prefix in prefixes for p in Path(tempfile.gettempdir()).glob(f"{prefix}*-*")]
    except OSError:
        return []
    removed = []
    for folder in found:
        prefix = next(p for p in prefixes if folder.name.startswith(p))
        owner = folder.name[len(prefix):].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and folder.is_dir() and not alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
