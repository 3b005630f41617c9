"""Is the process that owns something (a training run, a bundle's temp folder, an export's
debris) still alive? One answer for every owner check."""
from __future__ import annotations

import os


def pid_alive(pid) -> bool:
    """Whether a process with this pid exists and is not a zombie (killed, not yet reaped).
    When the system cannot say (an error other than "no such process"), it counts as alive:
    callers delete or mark things "interrupted" on False, and that must never hit a live owner."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True    # e.g. PermissionError: it exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
