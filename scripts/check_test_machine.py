"""Before the test suite starts: can this machine run what the tests need? Stops `make test` in seconds, with
the reason and the fix, instead of failing (or skipping) tests many minutes in.

    python scripts/check_test_machine.py

Checks: torch imports and computes; the default model's files are in the cache; Debian's Chromium starts
headless under Playwright and renders a page; llama-cpp-python imports (its server was already proved by
scripts/check_llama_cpp.py when it was installed)."""
from __future__ import annotations

import importlib.util
import os
import sys
import time

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")


def check_torch() -> str | None:
    import torch

    x = torch.ones(64, 64)
    if float((x @ x)[0, 0]) != 64.0:
        return "torch computes a wrong matrix product on this CPU"
    return None


def check_model() -> str | None:
    from workbench.engine.models import default_gguf_path

    path = default_gguf_path()
    return None if path.exists() else f"the default model's GGUF is missing ({path}); run `make setup`"


def check_chromium() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing; `make browser` installs Debian's chromium"
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page()
            page.set_content("<p id=x>ok</p>")
            if page.inner_text("#x") != "ok":
                return "headless Chromium started but did not render a page"
        finally:
            browser.close()
    return None


def check_llama_cpp() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed; `scripts/build_llama_cpp.sh install .venv` installs it"
    return None


def main() -> int:
    t0 = time.monotonic()
    problems = []
    for name, check in (("torch", check_torch), ("default model", check_model), ("chromium", check_chromium),
                        ("llama-cpp-python", check_llama_cpp)):
        try:
            why = check()
        except Exception as exc:  # noqa: BLE001 - any failure here is the message
            why = f"{type(exc).__name__}: {exc}"
        if why:
            problems.append(f"  {name}: {why}")
    if problems:
        print("error: this machine cannot run the test suite:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print(f"test machine ok: torch, default model, headless Chromium, llama-cpp-python ({time.monotonic() - t0:.1f} s)")
    from workbench.storage.data_bigbench import bigbench_root, bigbench_unavailable

    gone = bigbench_unavailable()
    if bigbench_root() is None and gone:
        # said up front, not only in the skip list at the end: these tests cannot run on this machine
        print(f"note: BIG-bench tasks are not here ({gone}); the tests that read real BIG-bench rows "
              "(intent, strategyqa) are skipped with that reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
