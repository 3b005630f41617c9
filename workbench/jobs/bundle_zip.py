"""Bundle zips: extracted only after everything was checked from the zip's directory and its
manifest, and the temp folders that loading a zip leaves when its process is killed.

    root = unzip_bundle("best.zip", tmp)   # only listed entries, of listed sizes, under the caps
    sweep_temp_folders()                   # wb-bundle-<pid>-* folders whose process is gone
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from workbench.errors import DataError
from workbench.jobs.bundle_check import (MANIFEST, MAX_FILES, MAX_MANIFEST_BYTES, check_manifest, inside,
                                         manifest_error, max_zip_ratio)
from workbench.jobs.pids import pid_alive

TEMP_PREFIX = "wb-bundle-"


def unzip_bundle(zip_path: str | Path, dest_parent: str | Path) -> Path:
    """Extract a bundle zip and return its folder. Everything is checked from the zip's directory
    and its manifest before a byte is written: no absolute paths, '..' or links, only entries the
    manifest lists, each with the size it lists, in total under `max_bundle_bytes()`."""
    dest_parent = Path(dest_parent)
    try:
        z = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise DataError(f"{zip_path} is not a zip file ({e}).",
                        hint="Pass the .zip that `workbench export --zip` or the Export tab wrote, or the bundle folder.") from e
    with z:
        infos = z.infolist()
        if len(infos) > MAX_FILES + 100:
            raise DataError(f"{zip_path} holds {len(infos)} entries (a bundle has at most {MAX_FILES}).",
                            hint="Is this a workbench bundle zip?")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise DataError(f"{zip_path} holds the same entry twice.", hint="Re-export the bundle.")
        files_named = {n.rstrip("/") for n in names if not n.endswith("/")}
        for info in infos:
            parts = info.filename.rstrip("/").split("/")
            if any(len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts) or len(info.filename) > 1024:
                raise DataError(f"{zip_path}: entry {info.filename[:80]!r}… has a name longer than a file system "
                                "allows (255 bytes a part).", hint="Bundles hold short file names; re-export it.")
            if any("/".join(parts[:k]) in files_named for k in range(1, len(parts))):
                raise DataError(f"{zip_path}: {'/'.join(parts[:-1])[:80]!r} is both a file and a folder in the zip.",
                                hint="Re-export the bundle.")
            inside(dest_parent, info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{zip_path}: entry {info.filename!r} is a symbolic link.",
                                hint="Bundles hold plain files only.")
        tops = {n.split("/", 1)[0] for n in names}
        prefix = next(iter(tops)) + "/" if len(tops) == 1 and MANIFEST not in names else ""
        try:
            man_info = z.getinfo(prefix + MANIFEST)
        except KeyError:
            raise DataError(f"{zip_path} holds no {MANIFEST}.", hint="Is this a workbench bundle zip?") from None
        where = f"{zip_path}:{prefix}{MANIFEST}"
        if man_info.file_size > MAX_MANIFEST_BYTES:
            raise manifest_error(where, f"the manifest is {man_info.file_size} bytes (at most {MAX_MANIFEST_BYTES}).")
        try:
            manifest = json.loads(z.read(man_info).decode("utf-8"))
        except RecursionError:
            raise DataError(f"{where} is nested too deeply to be a manifest.", hint="Re-export the bundle.") from None
        except (ValueError, zipfile.BadZipFile) as e:
            raise DataError(f"{where} is not valid JSON ({e}).", hint="Re-export the bundle.") from e
        files = check_manifest(manifest, where)["files"]
        todo = []
        for info in infos:
            if info.is_dir():
                continue
            if not info.filename.startswith(prefix):
                raise DataError(f"{zip_path}: entry {info.filename!r} lies outside the bundle folder {prefix!r}.",
                                hint="Re-export the bundle.")
            rel = info.filename[len(prefix):]
            if rel != MANIFEST:
                if rel not in files:
                    raise DataError(f"{zip_path}: entry {rel!r} is not in its manifest.",
                                    hint="Re-export the bundle; do not add files to it.")
                if info.file_size != files[rel]["size"]:
                    raise DataError(f"{zip_path}: entry {rel!r} is {info.file_size} bytes, but the manifest says "
                                    f"{files[rel]['size']} (size mismatch).", hint="Re-export the bundle.")
            todo.append(info)
        # a zip bomb: a few MB that declare gigabytes (the manifest's total is capped above too)
        packed = sum(i.compress_size for i in todo)
        unpacked = sum(i.file_size for i in todo)
        ratio = max_zip_ratio()
        if unpacked > (1 << 20) and unpacked > ratio * max(1, packed):
            raise DataError(f"{zip_path}: {packed / (1 << 20):.1f} MB that would extract to "
                            f"{unpacked / (1 << 20):.1f} MB (more than {ratio:g}x: a zip bomb?).",
                            hint="Raise WORKBENCH_MAX_ZIP_RATIO if you trust this bundle.")
        for info in todo:
            _extract_one(z, info, dest_parent / info.filename, zip_path)
    root = dest_parent / prefix.rstrip("/") if prefix else dest_parent
    return root


def _extract_one(z: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zip_path) -> None:
    """Copy one entry, never more bytes than its directory entry declared."""
    left = info.file_size
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            while True:
                chunk = src.read(min(1 << 20, left + 1))
                if not chunk:
                    break
                left -= len(chunk)
                if left < 0:
                    raise DataError(f"{zip_path}: entry {info.filename!r} holds more than its declared size.",
                                    hint="The zip is damaged or crafted; re-export the bundle.")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise DataError(f"{zip_path}: entry {info.filename!r} is damaged ({e}).", hint="Re-download the bundle.") from e
    except OSError as e:   # a full disk, a name the file system refuses: one line, not a traceback
        raise DataError(f"{zip_path}: could not extract {info.filename[:80]!r} to {target.parent}: "
                        f"{e.strerror or e}.", hint="Free disk space in the temp folder ($TMPDIR), or extract "
                        "the bundle where there is room and pass the folder.") from e


def _owner_pid(folder: Path) -> int | None:
    """The pid in a temp folder named wb-bundle-<pid>-<random>, if any."""
    m = re.match(re.escape(TEMP_PREFIX) + r"(\d+)-", folder.name)
    return int(m.group(1)) if m else None



def sweep_temp_folders() -> list[Path]:
    """Remove wb-bundle-* folders whose owner process is gone (a predict killed by SIGKILL leaves
    one behind; a normal end, an error or garbage collection removes it already)."""
    removed = []
    try:
        candidates = list(Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"))
    except OSError:
        return removed
    for d in candidates:
        pid = _owner_pid(d)
        if pid is None or pid == os.getpid() or pid_alive(pid) or not d.is_dir() or d.is_symlink():
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed
