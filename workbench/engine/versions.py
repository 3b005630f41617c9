"""The installed versions that a result depends on, read once per call from package metadata.

One list for every record (eval results, lm-eval outputs, export manifests) so that two results
can be compared on the same keys; the fast-path check keys its cache on its own subset."""
from __future__ import annotations

import importlib.metadata as md
import platform

RECORDED = ("prompt-workbench", "torch", "transformers", "peft", "lm_eval")


def package_versions(packages=RECORDED, *, missing: str | None = None) -> dict:
    """{"python": X.Y.Z, package: version}; a package that is not installed is left out, or
    given the value `missing` when that is set (a cache key must not change shape)."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            if missing is not None:
                out[pkg] = missing
    return out
