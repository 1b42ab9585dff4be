# Two commands matter: `make demo` and `make test`. Both install what they need into .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch comes first: on the dev/CI machines `torch==2.13.0` is a CPU wheel on local disk.
# Elsewhere pick your build, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
DEMO_STORAGE ?= runs/demo
PYTEST_ARGS ?=

SERVE_PORT ?= 8000

.PHONY: setup browser test demo serve lint wheel diagram clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	@set -o pipefail; $(BIN)/python -m pip install -q $(TORCH_SPEC) 2>&1 | { grep -v "is ignored" || true; }
	@# the distribution was called "ccrs" before it became "ccrs-ray": drop an old editable install of it
	@$(BIN)/python -m pip uninstall -q -y ccrs >/dev/null 2>&1 || true
	@# setuptools' editable_wheel prints a notice per editable install ("be careful with folders named
	@# like the package"): silenced for that module only, every other warning still shows
	@set -o pipefail; PYTHONWARNINGS="ignore:::setuptools.command.editable_wheel" \
	    $(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | { grep -v "is ignored" || true; }
	@touch $(STAMP)
	@echo "setup: $(VENV) ready"

# Tests marked `cluster` start their own multi-node Ray cluster: run them in a pytest process of
# their own (the second command below), never beside the first process's local cluster.
# The chat-page test drives a real Chromium (Debian's package; a test tool's own browser download is
# blocked here). Installed once when missing and apt-get is usable; otherwise that test says why it skips.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	    [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && \
	      apt-get install -y -qq chromium >/dev/null 2>&1; }; } && echo "browser: chromium installed"; } || \
	    echo "browser: no chromium (the chat-page test will skip)"

test: setup browser
	$(BIN)/python -m pytest -q -m "not slow and not cluster and not gpu" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m "cluster and not slow and not gpu" $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: none selected

demo: setup
	$(BIN)/python -m ray_jobs.pipeline --preset small --storage-path $(DEMO_STORAGE)

# Serves the checkpoints `make demo` wrote (run it first) at http://127.0.0.1:$(SERVE_PORT)/
serve: setup
	$(BIN)/ccrs serve --rec-ckpt $(DEMO_STORAGE)/runs/rec-meta-fold0/eval/best.pt \
	    --gen-ckpt $(DEMO_STORAGE)/runs/dial-meta-fold0/eval/best.pt --data $(DEMO_STORAGE)/prepared --port $(SERVE_PORT)

# The distribution `ccrs-ray` as a wheel in dist/ (install it with `pip install dist/ccrs_ray-*.whl`)
wheel: setup
	rm -rf dist && $(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
	@ls dist/*.whl

# docs/architecture/system.svg from its source (Graphviz `dot`: Debian's graphviz package). The sha256 of
# the source goes into the SVG, so a test sees when the picture is older than its source.
diagram:
	@command -v dot >/dev/null || { echo "diagram: needs Graphviz's dot (apt-get install graphviz)"; exit 1; }
	dot -Tsvg docs/architecture/system.dot | sed "2i <!-- source sha256 $$(sha256sum docs/architecture/system.dot | cut -c1-64) -->" \
	    > docs/architecture/system.svg.tmp && mv docs/architecture/system.svg.tmp docs/architecture/system.svg
	dot -Tpng -Gdpi=110 docs/architecture/system.dot -o docs/architecture/system.png

lint: setup
	$(BIN)/ruff check ccrs ray_jobs serve tests benchmarks studies

clean:
	rm -rf $(VENV) runs dist build .pytest_cache
