# HandX developer commands. `make demo` and `make test` set everything up on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.handx-setup
TORCH_VERSION := 2.13.0
PYTEST_ARGS ?=
DEMO_OUT ?= demo_out

.PHONY: setup osmesa test demo demo-pipeline lint models clean help

help:
	@echo 'make setup   create $(VENV) with torch $(TORCH_VERSION), the project and ROS 2 rclpy,'
	@echo '             and install OSMesa (libosmesa6) for offscreen rendering where missing'
	@echo 'make test    run the whole test suite (sets up first if needed)'
	@echo 'make demo    start the ROS 2 node graph (generation, retargeting, MuJoCo gate and'
	@echo '             streaming) as processes, drive it with a prompt, an observed one-hand'
	@echo '             stream and teleoperation, record every /handx topic to MCAP, and write'
	@echo '             the report to $(DEMO_OUT)/'
	@echo 'make demo-pipeline  the library pipeline without ROS (data sources, corpus,'
	@echo '             retargeting comparisons, gate, generation) into $(DEMO_OUT)/pipeline/'
	@echo 'make lint    ruff over the repository'
	@echo 'make models  rebuild the shipped generation models and the evaluator (corpus seed 0,'
	@echo '             4000 clips; about 6 h on 2 CPU cores; see handx_gen/weights/README.md)'

setup: $(STAMP) osmesa

# Offscreen rendering (`handx sim --video`) runs on OSMesa when there is no display: install
# Debian's libosmesa6 where it is missing (as root, or through passwordless sudo). A quick check
# when present. Never fails setup: without it only rendering is unavailable, and says so.
osmesa:
	@set +e; \
	if [ "$$(uname -s)" != Linux ] || \
	  { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libOSMesa\.so'; then \
	  exit 0; \
	fi; \
	hint='video rendering is unavailable until OSMesa is installed (apt-get install libosmesa6)'; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: libOSMesa not found and no apt-get here; $$hint" >&2; exit 0; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=''; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo='sudo -n'; \
	else echo "setup: libOSMesa not found and no root or passwordless sudo; $$hint" >&2; exit 0; fi; \
	echo 'setup: installing libosmesa6 (offscreen rendering)'; \
	apt_install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"; \
	apt_install="$$apt_install --no-install-recommends libosmesa6"; \
	log=$$($$apt_install 2>&1) \
	  || log=$$($$sudo apt-get update -qq 2>&1 && $$apt_install 2>&1) \
	  || echo "$$log"$$'\n'"setup: could not install libosmesa6; $$hint" >&2

# Idempotent: re-runs only when the dependency files change. Torch is installed first and
# pinned through constraints.txt so no later requirement can pull another (CUDA) build.
# With a sourced ROS 2 that already provides rclpy, the venv sees the system packages and the
# PyPI ROS wheels are skipped.
$(STAMP): setup.py constraints.txt pyproject.toml package.xml
	@set -e; \
	if [ -n "$${ROS_DISTRO:-}" ] && $(PYTHON) -c 'import rclpy' 2>/dev/null; then \
	  echo "setup: using rclpy from the sourced ROS 2 $${ROS_DISTRO}"; ros_extra=''; site='--system-site-packages'; \
	else \
	  ros_extra=',ros'; site=''; \
	fi; \
	[ -x $(PY) ] || $(PYTHON) -m venv $$site $(VENV); \
	$(PIP) install --quiet --disable-pip-version-check torch==$(TORCH_VERSION); \
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev$$ros_extra]"; \
	$(PY) -c 'import torch; assert torch.__version__.startswith("$(TORCH_VERSION)"), torch.__version__'; \
	touch $(STAMP); \
	echo "setup: $(VENV) ready"

# pytest exits 5 when it collects nothing: report that as its own failure, never as a pass.
test: setup
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo 'make test: pytest collected no tests (exit 5); check the selection' >&2; fi; \
	exit $$rc

demo: setup
	$(PY) -m handx_ros.demo_graph --out $(DEMO_OUT)

demo-pipeline: setup
	$(PY) -m handx_ros.demo --out $(DEMO_OUT)/pipeline

models: setup
	$(PY) training/ship.py

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(DEMO_OUT) demo_output .pytest_cache .ruff_cache build install log *.egg-info
