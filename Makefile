# The whole set-up: `make run` and `make test` (see README.md).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: run test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: the CPU wheel; anything else would pull gigabytes of CUDA packages.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev,cuda,mlx]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gearterm $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

SHARED  := ../shared
bench: $(STAMP)
	$(BIN)/gearterm bench quality --model $(SHARED)/models/stories260K-hf --text $(SHARED)/data/tinystories-valid-head/tinystories_val.txt

clean:
	rm -rf $(VENV)
