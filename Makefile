# synthclone: set-up, demo and tests.  The README's two commands are `make demo` and `make test`.
# Every target is idempotent: re-running it only does what is missing.

VENV      ?= .venv
PYTHON    ?= python3
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
APT_PKGS  := libturbojpeg0-dev libopencv-dev pkg-config wordnet-base wordnet-sense-index g++
TORCH     := torch==2.14.1 torchvision==0.29.1
# One cache whether run under make or directly: SYNTHCLONE_CACHE (default ~/.cache/synthclone;
# compiled kernels under it, see engine/env.py) is left to the user's environment.
export HF_HUB_OFFLINE ?= 1

.PHONY: setup system python demo test bench clean

setup: system python

# System packages: FFCV's build deps and the WordNet 3.0 database (see README "Installation").
system:
	@if dpkg -s $(APT_PKGS) >/dev/null 2>&1; then echo "system packages: present"; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $(APT_PKGS); fi

# The virtualenv: torch first (pinned), then the package with its test extras.
python: $(VENV)/.installed

$(VENV)/.installed: setup.py $(wildcard csrc/*.cpp csrc/cuda/*.cu)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q $(TORCH)
	$(PIP) install -q numpy
	$(PIP) install -q ffcv==1.0.2   # built with isolation, against the apt libraries above
	$(PIP) install -q --no-build-isolation -e '.[test,dali]'   # DALI: its CPU tests run in CI
	@touch $@

# Main job on the built-in default: plan a small clone of a few ImageNet classes, generate it
# with the tiny random-weight model, and summarise the result.
demo: setup
	$(VENV)/bin/synthclone demo --out runs/demo --overwrite

# The test suite (pytest exit code 5, "no tests collected", is a failure here on purpose).
test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m bench --list

clean:
	rm -rf build *.egg-info engine/_C*.so .pytest_cache
