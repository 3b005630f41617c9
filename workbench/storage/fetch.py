"""Fetch data the workbench cannot pip-install: the BIG-bench JSON tasks.

    python -m workbench.storage.fetch bigbench            # into $WORKBENCH_CACHE (default $WORKBENCH_HOME)/bigbench/benchmark_tasks
    python -m workbench.storage.fetch bigbench --force    # fetch again

BIG-bench's sdist on PyPI cannot be installed with current pip (it declares a direct-URL
dependency), but it does carry every JSON task. So we download the sdist, check its sha256
against both PyPI's JSON API and the digest pinned here, and extract only
`bigbench/benchmark_tasks/**/task.json` (about 1.7 GB unpacked, 874 task files).
`WORKBENCH_BIGBENCH_TARBALL=/path/bigbench-1.0.0.tar.gz` uses a local copy instead of downloading.

The extraction goes to a temporary folder next to the destination and is renamed into place
at the end, so an interrupted fetch never leaves a half-filled `benchmark_tasks`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from workbench.errors import DataError
from workbench.core.fileutil import sha256_file

BIGBENCH_VERSION = "1.0.0"
BIGBENCH_SDIST = f"bigbench-{BIGBENCH_VERSION}.tar.gz"
# sha256 of bigbench-1.0.0.tar.gz as published on PyPI (358,249,635 bytes).
BIGBENCH_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
PYPI_JSON = "https://pypi.org/pypi/bigbench/json"
TASKS_PREFIX = "bigbench/benchmark_tasks/"
TIMEOUT_S = 60


def default_dest() -> Path:
    from workbench.paths import cache_home

    return cache_home() / "bigbench" / "benchmark_tasks"


def _sdist_from_pypi() -> tuple[str, str]:
    """(url, sha256) of the sdist, read from PyPI's JSON API."""
    try:
        with urllib.request.urlopen(PYPI_JSON, timeout=TIMEOUT_S) as r:
            info = json.load(r)
    except OSError as e:
        raise DataError(f"Could not reach PyPI to find {BIGBENCH_SDIST}: {e}",
                        hint="Check the network, or set WORKBENCH_BIGBENCH_TARBALL to a local copy.") from e
    files = [f for files in info.get("releases", {}).values() for f in files] + list(info.get("urls", []))
    for f in files:
        if f.get("filename") == BIGBENCH_SDIST:
            return f["url"], f["digests"]["sha256"]
    raise NotServed(f"{BIGBENCH_SDIST} is not listed on PyPI (it lists: "
                    f"{', '.join(sorted(f.get('filename', '?') for f in files)) or 'nothing'}).",
                    hint="Set WORKBENCH_BIGBENCH_TARBALL to a local copy of the sdist.")


class NotServed(DataError):
    """The registry answered, and the release is not there: a final answer, not a network failure."""


UNAVAILABLE_NAME = "UNAVAILABLE"   # beside benchmark_tasks/: why the tasks could not be fetched


def _download(url: str, dest: Path) -> None:
    print(f"downloading {url} ...", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f, length=1 << 20)
    except OSError as e:
        raise DataError(f"Download of {url} failed: {e}", hint="Retry, or set WORKBENCH_BIGBENCH_TARBALL.") from e


def _task_members(tf: tarfile.TarFile):
    """Regular-file members that are benchmark task.json files, with their path below benchmark_tasks/."""
    for m in tf:
        if not m.isfile():
            continue
        # sdist names look like bigbench-1.0.0/bigbench/benchmark_tasks/TASK[/SUB]/task.json
        _, sep, rel = m.name.partition(TASKS_PREFIX)
        if not sep or not rel.endswith("task.json"):
            continue
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or parts[-1] != "task.json":
            continue  # never write outside the destination
        yield m, rel


def extract_tasks(tarball: Path, dest: Path) -> int:
    """Extract the task.json files of `tarball` into `dest` atomically; returns how many."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bigbench-", dir=dest.parent))
    n = 0
    try:
        with tarfile.open(tarball, "r:*") as tf:
            for m, rel in _task_members(tf):
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                with src, open(out, "wb") as f:
                    shutil.copyfileobj(src, f, length=1 << 20)
                n += 1
        if n == 0:
            raise DataError(f"{tarball} holds no {TASKS_PREFIX}**/task.json files.",
                            hint=f"Use the {BIGBENCH_SDIST} sdist from PyPI.")
        if dest.exists():  # --force, or a concurrent fetch finished first
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def fetch_bigbench(dest: Path | None = None, *, force: bool = False, tarball: Path | None = None,
                   sha256: str | None = BIGBENCH_SHA256) -> Path:
    """Make the BIG-bench JSON tasks available in `dest` (default $WORKBENCH_CACHE or $WORKBENCH_HOME, /bigbench/benchmark_tasks).

    Idempotent: returns at once when `dest` already holds tasks (unless `force`). The tarball is
    `tarball`, else $WORKBENCH_BIGBENCH_TARBALL, else downloaded from PyPI; its sha256 must equal
    `sha256` (pass None to skip that check, e.g. for a hand-made test tarball).
    """
    dest = Path(dest) if dest else default_dest()
    if not force and dest.is_dir() and any(dest.glob("*/task.json")):
        return dest
    local = tarball or os.environ.get("WORKBENCH_BIGBENCH_TARBALL")
    with tempfile.TemporaryDirectory(prefix="bigbench-dl-") as td:
        if local:
            path = Path(local).expanduser()
            if not path.is_file():
                raise DataError(f"BIG-bench tarball not found: {path}",
                                hint="Fix WORKBENCH_BIGBENCH_TARBALL, or unset it to download from PyPI.")
        else:
            url, pypi_sha = _sdist_from_pypi()
            if sha256 and pypi_sha != sha256:
                raise DataError(f"PyPI lists sha256 {pypi_sha} for {BIGBENCH_SDIST}, expected {sha256}.",
                                hint="The release changed upstream; check it before trusting it.")
            sha256 = pypi_sha
            path = Path(td) / BIGBENCH_SDIST
            _download(url, path)
        if sha256:
            got = sha256_file(path)
            if got != sha256:
                raise DataError(f"sha256 of {path} is {got}, expected {sha256}.",
                                hint="The file is damaged or not the right release; download it again.")
        n = extract_tasks(path, dest)
    print(f"{n} BIG-bench task files in {dest}", file=sys.stderr)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.storage.fetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["bigbench"], help="what to fetch")
    ap.add_argument("--dest", type=Path, default=None, help="destination (default $WORKBENCH_HOME/bigbench/benchmark_tasks)")
    ap.add_argument("--force", action="store_true", help="fetch again even when present")
    ap.add_argument("--optional", action="store_true",
                    help="when PyPI no longer serves the release, record why (a file UNAVAILABLE beside the "
                         "tasks, which the test suite reads) and exit 0; the built-ins that need it show as missing")
    args = ap.parse_args(argv)
    dest = args.dest or default_dest()
    marker = dest.parent / UNAVAILABLE_NAME
    try:
        print(fetch_bigbench(dest, force=args.force))
    except NotServed as e:
        if not args.optional:
            print(f"error: {e}", file=sys.stderr)
            return 1
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{e.message}\n")
        print(f"warning: BIG-bench tasks not fetched: {e.message} The `intent` and `strategyqa` built-ins and "
              f"bigbench:TASK stay unavailable; tests that read real BIG-bench rows are skipped with this reason "
              f"({marker}).", file=sys.stderr)
        return 0
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    marker.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
