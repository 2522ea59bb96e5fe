# Two commands for a fresh clone: `make repro` (the whole pipeline on the default data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install repro test clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# DVC needs a git repository; a tarball or export is initialised on first use.
.git:
	git init -q && git add -A && git -c user.name=dhns -c user.email=dhns@localhost commit -q -m "initial import"

repro: $(STAMP) .git
	$(BIN)/dvc repro
	@echo "Metrics: metrics/eval.json (test and valid), metrics/pretrain.json, metrics/data.json"
	@$(BIN)/dvc metrics show

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
