"""Which of .gpu/whl/*.whl (bench/gpu_check.sh; argv[1] = the folder) to install into --target: those this interpreter can install (tags)
and whose distribution the environment lacks. FORCE (the lm-eval stack the image lacks, and
dill/multiprocess, which must match each other) is always installed. WHEELS_ALL=1 installs every
installable wheel (the CPU dry run, to exercise our versions). Prints paths; notes go to stderr."""
import glob, os, re, sys
from importlib import metadata

from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

FORCE = {"lm-eval", "datasets", "evaluate", "dill", "multiprocess", "xxhash"}
whl = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".gpu", "whl")
supported = set(sys_tags())
everything = os.environ.get("WHEELS_ALL") == "1"
for path in sorted(glob.glob(os.path.join(whl, "*.whl"))):
    name, version, _, tags = parse_wheel_filename(os.path.basename(path))
    name = canonicalize_name(name)
    if not (tags & supported):
        print(f"  skip {name} {version}: no tag for this interpreter", file=sys.stderr)
        continue
    try:
        have = metadata.version(str(name))
    except metadata.PackageNotFoundError:
        have = None
    if have and not everything and name not in FORCE:
        print(f"  skip {name} {version}: environment has {have}", file=sys.stderr)
        continue
    print(f"  install {name} {version}" + (f" (environment has {have})" if have else ""), file=sys.stderr)
    print(path)
