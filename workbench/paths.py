"""Where the workbench keeps its files: `$WORKBENCH_HOME`, default `~/.cache/prompt-workbench`.

    models/        converted model caches (safetensors)
    runs.sqlite    the run registry
    templates/     the user's own templates
    train/         training runs (logs, checkpoints, adapters)
    exports/       bundles
    data/          data files a server exposed beyond loopback may read (see check_server_path)
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def home() -> Path:
    p = Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".cache" / "prompt-workbench")
    p.mkdir(parents=True, exist_ok=True)
    return p


def _sub(name: str) -> Path:
    p = home() / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_home() -> Path:
    """Big, rebuildable caches (converted models, BIG-bench files). Defaults to `home()`;
    tests point `WORKBENCH_CACHE` at the real cache while `WORKBENCH_HOME` is a temp folder,
    so each test gets a fresh registry without converting the model again."""
    p = Path(os.environ.get("WORKBENCH_CACHE") or home())
    p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir() -> Path:
    p = cache_home() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def user_templates_dir() -> Path:
    return _sub("templates")


def train_dir() -> Path:
    return _sub("train")


def exports_dir() -> Path:
    return _sub("exports")


def runs_db() -> Path:
    return home() / "runs.sqlite"


def repo_root() -> Path:
    """The source checkout (for `templates_library/`), when running from one."""
    return Path(__file__).resolve().parent.parent


def library_dir() -> Path:
    return repo_root() / "templates_library"


# ---------------------------------------------------------------------------- server-side paths
# When the app is served beyond loopback (`workbench serve --host 0.0.0.0`, --share), a remote
# user must not read arbitrary files of the host through inputs that take a server path (the
# Data tab's path, a model folder, a training run folder). `launch()` switches the policy on;
# the CLI and the Python API never restrict. docs/SECURITY.md describes it.
_SERVER: dict = {"restricted": False, "roots": None, "allowed": set(), "urls": []}


def restrict_server_paths(roots=None, allowed: tuple = ()) -> None:
    """Confine server-side paths to `roots` (default: `server_data_roots()`). `allowed` are specs
    the operator named at start (the --data and --model of `workbench serve`), always accepted."""
    _SERVER.update(restricted=True, roots=[Path(r).expanduser() for r in roots] if roots else None,
                   allowed={str(a) for a in allowed if a})


def unrestrict_server_paths() -> None:
    _SERVER.update(restricted=False, roots=None, allowed=set(), urls=[])


def server_paths_restricted() -> bool:
    return bool(_SERVER["restricted"]) or os.environ.get("WORKBENCH_RESTRICT_PATHS", "").lower() in ("1", "true", "yes")


def upload_dir() -> Path:
    """Where Gradio stores uploaded files (its GRADIO_TEMP_DIR, default <tmp>/gradio)."""
    import tempfile

    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def server_data_roots() -> list[Path]:
    """Folders a restricted server may read data from: the configured ones (--data-dir), else
    $WORKBENCH_HOME/data; always the upload folder; plus $WORKBENCH_DATA_DIRS (os.pathsep-separated)."""
    roots = list(_SERVER["roots"] or [home() / "data"])
    roots.append(upload_dir())
    roots += [Path(p).expanduser() for p in os.environ.get("WORKBENCH_DATA_DIRS", "").split(os.pathsep) if p.strip()]
    return roots


def check_server_path(spec: str, what: str = "path", roots=None) -> str:
    """`spec` when the server may read it, else a DataError. Unrestricted (CLI, API, loopback
    app): returned as is. Restricted: the path, with links and '..' resolved, must lie inside
    one of `roots` (default `server_data_roots()`); returns the resolved path."""
    if not server_paths_restricted() or str(spec) in _SERVER["allowed"]:
        return str(spec)
    from workbench.errors import DataError

    roots = [Path(r).expanduser().resolve() for r in (roots if roots is not None else server_data_roots())]
    try:
        full = Path(str(spec)).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        full = None
    if full is not None and any(full == r or r in full.parents for r in roots):
        return str(full)
    raise DataError(f"This server reads {what}s only from its data folders, not {str(spec)[:200]!r}.",
                    hint="Upload the file instead, or ask whoever runs the server to put it in one of: "
                         + ", ".join(str(r) for r in roots) + " (workbench serve --data-dir).")


# A hub dataset id: `name` or `owner/name`, letters, digits, `-`, `_`, `.` (the hub's own rule).
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")


def check_hub_id(spec: str) -> str:
    """`hf:owner/name[:config]` when a restricted server may load it, else a DataError.

    `datasets.load_dataset` reads a *local folder* when its name is one (absolute, relative to
    the working directory, or with `~`), so an `hf:` name would be a path around the data
    folders (issue 29, item 1). Restricted, the name must be a hub id and must not name an
    existing path; unrestricted it is returned as is."""
    if not server_paths_restricted() or str(spec) in _SERVER["allowed"]:
        return str(spec)
    from workbench.errors import DataError

    repo = str(spec)[len("hf:"):].partition(":")[0]
    parts = repo.split("/")
    hint = "Write hf:owner/name (a Hugging Face hub id), or upload the file instead."
    if not _HUB_ID.fullmatch(repo) or any(p in (".", "..") or p.startswith(".") for p in parts):
        raise DataError(f"{str(spec)[:200]!r} is not a hub dataset id (this server reads only its data folders).",
                        hint=hint)
    try:
        local = Path(repo).expanduser().exists() or (Path.cwd() / repo).exists()
    except (OSError, ValueError):
        local = True
    if local:
        raise DataError(f"{str(spec)[:200]!r} names a folder on this server, not a hub dataset "
                        "(this server reads only its data folders).", hint=hint)
    return str(spec)


# ---------------------------------------------------------------------------- inference-server URLs
# A restricted (exposed) server must not become a proxy into its own network: a remote user
# who saves "http://127.0.0.1:7890/internal/admin" as an inference server would otherwise make
# the server request it (issue 29, item 5). Restricted, only URLs under an entry of the
# operator's allow-list are used: `serve --allowed-servers URL` or $WORKBENCH_ALLOWED_SERVERS
# (whitespace- or comma-separated). The CLI and a loopback app are not restricted.
def allow_server_urls(urls) -> None:
    _SERVER["urls"] = [str(u).strip() for u in (urls or []) if str(u).strip()]


def allowed_server_urls() -> list[str]:
    env = os.environ.get("WORKBENCH_ALLOWED_SERVERS", "").replace(",", " ").split()
    return [*_SERVER["urls"], *env]


def _url_parts(url: str):
    from urllib.parse import urlsplit

    u = url.strip()
    u = u[len("openai:"):] if u.startswith("openai:") else u
    p = urlsplit(u.partition("#")[0])
    try:
        port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    except ValueError:
        return None
    if p.scheme not in ("http", "https") or not p.hostname:
        return None
    return p.scheme, p.hostname.lower().rstrip("."), port, "/" + p.path.strip("/")


def check_server_url(url: str) -> str:
    """`url` when this process may send requests to it, else a ConfigError (see above)."""
    if not server_paths_restricted():
        return url
    from workbench.errors import ConfigError

    want = _url_parts(url)
    for entry in allowed_server_urls():
        ok = _url_parts(entry)
        if want and ok and want[:3] == ok[:3] and (ok[3] == "/" or want[3] == ok[3]
                                                 or want[3].startswith(ok[3].rstrip("/") + "/")):
            return url
    listed = allowed_server_urls()
    where = "%s://%s:%s" % want[:3] if want else "that URL"
    hint = ("Allowed: " + ", ".join(listed[:5]) + ".") if listed else "No inference server is allowed here yet."
    raise ConfigError(f"This server may not connect to {where}: it is not on the operator's list of inference servers.",
                      hint=hint + " Whoever runs the server can allow one with workbench serve --allowed-servers "
                                  "http://HOST:PORT/v1 (or $WORKBENCH_ALLOWED_SERVERS).")
