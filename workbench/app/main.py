"""The browser workbench: `workbench serve` (or `make run`) → http://127.0.0.1:7860.

    from workbench.app.main import build_app, launch_kwargs
    demo = build_app(model="default", data="bbc")
    demo.launch(server_name="127.0.0.1", server_port=7860, **launch_kwargs())

Layout: the model bar on top, then one tab per module in `TABS`. Each tab module has
`build(ctx)`, which creates its components inside the current Blocks and wires its events to
module-level handler functions, each with an `api_name` (see docs/API.md), so scripts can
drive the app with `gradio_client` exactly as the page does.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path

import gradio as gr

from workbench.app.common import Ctx, UIState

log = logging.getLogger("workbench.app")

# Tabs in display order: module names under workbench/app/, each with build(ctx).
# To add a tab (Compare, Train, Export), write workbench/app/tab_<name>.py with a
# `build(ctx: Ctx)` function and add its module name here. Tabs that read another tab's
# components (ctx.editor, ctx.events[...]) must come after it.
TABS = [
    "tab_data",
    "tab_templates",
    "tab_preview",
    "tab_run",
    "tab_compare",
    "tab_search",
    "tab_train",
    "tab_export",
    "tab_runs",
]

CSS_PATH = Path(__file__).with_name("style.css")


def theme():
    # System fonts only: a Google font would be fetched from the internet on every page load.
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
                          font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def launch_kwargs() -> dict:
    """Theme and CSS: Gradio 6 takes them in `launch()`, not in `Blocks()`."""
    return {"theme": theme(), "css": CSS_PATH.read_text() if CSS_PATH.exists() else None}


LAUNCH_TRIES = 3


def launch_demo(demo: gr.Blocks, **kwargs) -> None:
    """`demo.launch(**kwargs)`, tried again when Gradio's own reachability check fails.

    After starting its server, Gradio sends one HEAD request to the page with a 3 s timeout and,
    if that times out, stops with "When localhost is not accessible, a shareable link must be
    created". On a busy 2-core machine (the model warming up beside it, or a test suite) the
    first page can take longer than that, although the server is fine: the launch is tried
    again, and the last failure is reported in words that name the cause."""
    for attempt in range(1, LAUNCH_TRIES + 1):
        try:
            demo.launch(**kwargs)
            return
        except ValueError as e:
            if "localhost is not accessible" not in str(e) or kwargs.get("share"):
                raise
            demo.close()
            if attempt == LAUNCH_TRIES:
                from workbench.errors import ConfigError

                raise ConfigError(
                    f"the server started but did not answer its own first request within Gradio's 3 s check, "
                    f"{LAUNCH_TRIES} times (a very busy machine, or a proxy that intercepts localhost)",
                    "try again when the machine is less busy, or set NO_PROXY=127.0.0.1,localhost") from e
            log.warning("the page did not answer Gradio's start-up check in time (busy machine?); launching again")
            time.sleep(1.0 * attempt)


def build_app(model: str = "default", data: str = "bbc") -> gr.Blocks:
    """The whole app, unlaunched. `model` fills the model bar, `data` is opened on page load."""
    from workbench.app import model_bar

    with gr.Blocks(title="Prompt Workbench", analytics_enabled=False) as demo:
        ctx = Ctx(demo=demo, state=gr.State(UIState(data_spec=None)),
                  job=gr.BrowserState("", storage_key="workbench_eval_job"),
                  draft=gr.BrowserState({}, storage_key="workbench_template_draft"),
                  browser={key: gr.BrowserState("", storage_key=f"workbench_{key}")
                           for key in ("compare_job", "robust_job", "train_run", "data_choice", "search_job")})
        # forms kept across reloads when no job holds them (app/form_keep.py)
        ctx.browser.update({key: gr.BrowserState({}, storage_key=f"workbench_{key}")
                            for key in ("train_form", "search_form")})
        with gr.Row(elem_id="header"):
            gr.Markdown("## Prompt Workbench\n<span class='subtitle'>design prompts for Hugging Face LMs: "
                        "data → template → preview → run → runs</span>")
        model_bar.build(ctx, model=model)
        from workbench.app import tour

        tour.header(ctx)
        with gr.Tabs(elem_id="tabs") as tabs:
            for name in TABS:
                mod = importlib.import_module(f"{__package__}.{name}")
                if name == "tab_data":
                    mod.build(ctx, data=data)
                else:
                    mod.build(ctx)
        tour.wire(ctx, tabs)
    # Model-heavy events share one queue ("model", limit 1); cheap ones run concurrently.
    demo.queue(default_concurrency_limit=4)
    return demo


# ------------------------------------------------------------------------------------ launch
def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """`user:pass` (from --auth or $WORKBENCH_AUTH) → (user, pass)."""
    from workbench.errors import ConfigError

    auth = auth or os.environ.get("WORKBENCH_AUTH")
    if not auth:
        return None
    user, sep, pw = auth.partition(":")
    if not sep or not user or not pw:
        raise ConfigError("--auth must look like user:password.", hint="e.g. --auth alice:s3cret, or set WORKBENCH_AUTH.")
    return user, pw


def is_loopback(host: str) -> bool:
    from workbench.app.exposure import is_loopback as _is_loopback

    return _is_loopback(host)


class LoginLimiter:
    """The login check Gradio calls (`auth=`), with brute force slowed down: each wrong password
    waits `delay_s` (asynchronously: other users are not held up), and after `max_failures`
    wrong passwords within `window_s` seconds every attempt is refused, the right password
    too, until the oldest failure leaves the window. Gradio gives the check no client address,
    so the lock is global: a remote guesser can lock the real user out for a minute at a time,
    which beats being guessed. Defaults: 5 failures a minute, 1 s each
    ($WORKBENCH_LOGIN_MAX_FAILURES, $WORKBENCH_LOGIN_WINDOW_S, $WORKBENCH_LOGIN_DELAY_S)."""

    def __init__(self, user: str, password: str, *, max_failures: int | None = None, window_s: float | None = None,
                 delay_s: float | None = None):
        env = os.environ.get
        self.user, self.password = user, password
        self.max_failures = int(max_failures if max_failures is not None else env("WORKBENCH_LOGIN_MAX_FAILURES", 5))
        self.window_s = float(window_s if window_s is not None else env("WORKBENCH_LOGIN_WINDOW_S", 60))
        self.delay_s = float(delay_s if delay_s is not None else env("WORKBENCH_LOGIN_DELAY_S", 1.0))
        self.failures: list[float] = []

    async def check(self, username: str, password: str) -> bool:
        """Pass the bound method to Gradio: it awaits only what inspect calls a coroutine function."""
        import asyncio
        import hmac
        import time

        now = time.monotonic()
        self.failures = [t for t in self.failures if now - t < self.window_s]
        if len(self.failures) >= self.max_failures:
            log.warning("login refused: %d failed logins in the last %.0f s", len(self.failures), self.window_s)
            await asyncio.sleep(self.delay_s)
            return False
        ok = hmac.compare_digest(str(username).encode(), self.user.encode()) & \
            hmac.compare_digest(str(password).encode(), self.password.encode())
        if not ok:
            self.failures.append(now)
            await asyncio.sleep(self.delay_s)
        return bool(ok)


DEFAULT_MAX_UPLOAD_MB = 200


def max_upload_bytes() -> int:
    """The largest file a user may upload ($WORKBENCH_MAX_UPLOAD_MB, default 200 MB; Gradio
    refuses bigger uploads with HTTP 413 before they are stored)."""
    from workbench.errors import ConfigError

    raw = os.environ.get("WORKBENCH_MAX_UPLOAD_MB") or DEFAULT_MAX_UPLOAD_MB
    try:
        return int(float(raw) * (1 << 20))
    except ValueError:
        raise ConfigError(f"WORKBENCH_MAX_UPLOAD_MB={raw!r} is not a number.", hint="Set it to a size in MB, e.g. 200.")


def launch(host: str | None = None, port: int = 7860, share: bool = False, auth: str | None = None,
           model: str = "default", data: str = "bbc", open_browser: bool = True, block: bool = True,
           insecure: bool = False, data_dirs: list[str] | None = None, allowed_hosts: list[str] | None = None,
           allowed_servers: list[str] | None = None):
    """Start the server (what `workbench serve` calls). Binds loopback unless told otherwise.

    Beyond loopback (another host, or share): a password is required unless `insecure`, and
    server-side paths are confined to the data folders (`data_dirs`, default
    $WORKBENCH_HOME/data, plus uploads); see docs/SECURITY.md. The bound address is decided
    once (`exposure.decide_bind`: the flag, else $GRADIO_SERVER_NAME, else loopback) and every
    check below judges that decision; requests whose Host header is not the bound address,
    localhost or one of `allowed_hosts` are refused (DNS rebinding)."""
    from workbench import paths
    from workbench.app.exposure import decide_bind, host_check_app_kwargs
    from workbench.errors import ConfigError

    creds = parse_auth(auth)
    bind = decide_bind(host, share)
    host, share = bind.host, bind.share
    exposed = bind.exposed
    if exposed and creds is None:
        where = "a public share link" if share else host
        if not insecure:
            raise ConfigError(f"Refusing to serve on {where} without a password: anyone who can reach it could run "
                              "costly jobs and read your data.",
                              hint="Add --auth user:pass (or set WORKBENCH_AUTH); or, on a network you trust, "
                                   "pass --insecure to serve without one.")
        msg = (f"WARNING: the workbench is reachable from other machines ({where}) without a password (--insecure).")
        print(msg, file=sys.stderr)
        log.warning(msg)
    from workbench.engine.remote import is_remote

    # the operator's own --model, when it is a server, is allowed like the list it gave
    paths.allow_server_urls([*(allowed_servers or []), *([model] if is_remote(model) else [])])
    if exposed:
        paths.restrict_server_paths(data_dirs, allowed=(data, model))
        roots = ", ".join(str(r) for r in paths.server_data_roots())
        print(f"Server-side paths are limited to: {roots}", file=sys.stderr)
    elif data_dirs:
        paths.restrict_server_paths(data_dirs, allowed=(data, model))
    demo = build_app(model=model, data=data)
    # Warm the model in the background so the first preview or run does not wait for it.
    import threading

    from workbench.engine.session import get_session

    def _warm():
        try:
            get_session(model)
        except Exception as e:  # noqa: BLE001 - the model bar shows the error when the user loads it
            log.warning("could not load model %s at start: %s", model, e)

    threading.Thread(target=_warm, name="warm-model", daemon=True).start()
    _clean_debris()
    # server_name and share are passed explicitly (never empty): Gradio must not re-read its
    # variables after our guard has judged them; ssr_mode off, so no Node front server binds.
    launch_demo(demo, server_name=host, server_port=port, share=share,
                auth=LoginLimiter(*creds).check if creds else None, inbrowser=open_browser, prevent_thread_lock=not block, show_error=False, ssr_mode=False,
                max_file_size=max_upload_bytes(),
                app_kwargs=host_check_app_kwargs(bind, allowed_hosts), **launch_kwargs())
    return demo


def _clean_debris() -> None:
    """What killed processes left behind: temp folders of exports and zip bundles, and training
    runs whose process died (read_status marks them interrupted)."""
    try:
        from workbench import paths
        from workbench.jobs.bundle import sweep_temp_folders
        from workbench.jobs.export import clean_export_debris
        from workbench.jobs.training import list_runs

        for line in clean_export_debris(paths.exports_dir()):
            log.info("cleanup: %s", line)
        sweep_temp_folders()
        list_runs()
    except Exception as e:  # noqa: BLE001 - a cleanup problem must not stop the server
        log.warning("cleanup at start failed: %s", e)
