"""Debris of killed exports: an export writes beside its bundle (`.NAME.tmp-<pid>`, a previous
bundle moved aside as `.NAME.old-<pid>`, `.NAME.zip.tmp-<pid>`) and swaps in at the end, so a
SIGKILL or power loss leaves these behind. `clean_export_debris` puts things right; files of live
exports (their pid alive) are left alone.
"""
from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path

from workbench.jobs.bundle_check import MANIFEST

_DEBRIS_RX = re.compile(r"^\.(?P<name>.+?)\.(?P<kind>tmp|old|zip\.tmp)-(?P<pid>\d+)(?:-\d+)?$")


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def _owner_gone(p: Path) -> bool:
    from workbench.jobs.pids import pid_alive

    m = _DEBRIS_RX.match(p.name)
    if not m:
        return False
    pid = int(m.group("pid"))
    return pid != os.getpid() and not pid_alive(pid)


def clean_dead(paths, done: list[str]) -> list[str]:
    """Remove those of `paths` whose owner process is gone; says so in `done`."""
    for p in paths:
        if _owner_gone(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            done.append(f"removed {p}")
    return done


def _zip_manifest(z: Path, name: str) -> bytes | None:
    try:
        with zipfile.ZipFile(z) as f:
            return f.read(f"{name}/{MANIFEST}")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None


def drop_stale_zip(final: Path, done: list[str] | None = None) -> None:
    """Remove <name>.zip beside a bundle folder when it is not that folder's zip (an export was
    killed after the new folder went in, before its zip was rewritten)."""
    z = final.parent / f"{final.name}.zip"
    if not z.is_file() or not (final / MANIFEST).is_file():
        return
    zipped = _zip_manifest(z, final.name)
    if zipped is not None and zipped != (final / MANIFEST).read_bytes():
        z.unlink(missing_ok=True)
        if done is not None:
            done.append(f"removed stale {z}")


def clean_export_debris(parent: str | Path, name: str | None = None) -> list[str]:
    """Clean up after exports that were killed (SIGKILL, power loss) in `parent`, for bundle
    `name` or all: temp folders and zip temp files of dead processes go; a previous bundle moved
    aside (`.NAME.old-*`) goes back into place when the new one never arrived, else goes; a zip
    that does not match its folder goes. Files of live exports are left alone. Returns what
    was done."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    done: list[str] = []
    pat = glob_escape(name) if name else "*"
    clean_dead(parent.glob(f".{pat}.tmp-*"), done)
    clean_dead(parent.glob(f".{pat}.zip.tmp-*"), done)
    for old in sorted(parent.glob(f".{pat}.old-*")):
        m = _DEBRIS_RX.match(old.name)
        if not m or m.group("kind") != "old" or not _owner_gone(old):
            continue
        final = parent / m.group("name")
        if not final.exists() and (old / MANIFEST).is_file():
            os.replace(old, final)
            done.append(f"restored {final} from {old.name}")
        else:
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"removed {old}")
    for final in ([parent / name] if name else [p for p in parent.iterdir() if p.is_dir()]):
        drop_stale_zip(final, done)
    return done


