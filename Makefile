# The whole set-up: `make run` and `make test` (see README.md). Both install from the
# committed lock (requirements.lock); `make lock` refreshes it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
LOCK    := requirements.lock
PIP     := pip==26.3
# torch first and pinned: the CPU wheel on this machine's disk. Asked for by anything else,
# pip would fetch a CUDA build of several gigabytes.
TORCH   := torch==2.13.0
# The CUDA extra (Triton, NVML) only where an NVIDIA GPU is.
RUN_EXTRAS := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "[cuda]")
# setuptools warns at length about every editable install, a warning meant for its authors.
INSTALL := PYTHONWARNINGS=ignore::UserWarning $(BIN)/pip install -q --no-warn-script-location -c $(LOCK)

.PHONY: run test bench lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(PIP)

$(VENV)/.run: $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install -q $(TORCH)
	$(INSTALL) -e ".$(RUN_EXTRAS)"
	touch $@

# The tests need every extra: Triton runs its kernels in its interpreter, mlx on the CPU.
$(VENV)/.test: $(VENV)/.run
	$(INSTALL) -e ".[dev,cuda,mlx]"
	touch $@

run: $(VENV)/.run
	$(BIN)/gearterm $(ARGS)

test: $(VENV)/.test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

SHARED  := ../shared
bench: $(VENV)/.run
	$(BIN)/gearterm bench quality --model $(SHARED)/models/stories260K-hf --text $(SHARED)/data/tinystories-valid-head/tinystories_val.txt

# Resolve every extra afresh in a scratch venv and write what it installed, exactly.
# Upgrading is a deliberate commit: `make lock`, then `make clean test`.
LOCK_VENV := $(VENV)-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PY) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q $(PIP)
	$(LOCK_VENV)/bin/pip install -q $(TORCH)
	$(LOCK_VENV)/bin/pip install -q ".[dev,cuda,mlx]"
	{ echo "# Exact versions gearterm is tested with (Python 3.11, Linux x86_64), made by"; \
	  echo "# 'make lock' on $$(date -u +%F). The Makefile installs torch ($(TORCH), CPU) first."; \
	  $(LOCK_VENV)/bin/pip freeze --all --exclude pip --exclude gearterm --exclude torch; } > $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV)
