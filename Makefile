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

# The paired comparison's grid (`make compare-run DATASETS="MKG-Y MKG-W" SCORERS=transe SEEDS="0 1 2 3 4"`).
DATASETS ?= MKG-Y
SCORERS ?= transe
ARMS ?= all
SEEDS ?= 0 1 2

.PHONY: install repro test exps compare-run compare clean-venv push pull bench bench-peers plots gpu-suite

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
	@echo "Metrics: metrics/eval.json (filtered test and valid; per direction and relation category: metrics/eval_breakdowns.json), metrics/train.json, metrics/diffusion.json, metrics/pretrain.json, metrics/data.json; curves: dvc plots show"
	@$(BIN)/python -c "import json; m = json.load(open('metrics/eval.json'))['test']['both']['realistic']; \
		print('test, filtered, both directions, realistic ranks:', ', '.join(f'{k} {v:.4f}' for k, v in m.items() if k != 'count'))"

test: $(STAMP)
	$(BIN)/python -m pytest -q

# `dvc exp show` with the headline columns only: every param and every metrics file (even eval.json's headline
# alone, 50 values) is too wide for a terminal (`dvc exp show --json` has them all).
EXP_COLUMNS := Experiment|Created|test\.both\.realistic\.(mrr|hits_at_1|hits_at_10)$$|metrics/eval\.json:valid\.both\.realistic\.mrr$$|^seed$$|^data\.dataset$$|^model\.name$$|^train\.(sampler|hard_loss)$$
exps: $(STAMP) .git
	$(BIN)/dvc exp show --no-pager --drop '.*' --keep '$(EXP_COLUMNS)'

# DHNS against classic negatives, everything else equal: each missing (dataset, scorer, seed, arm) cell runs
# as a DVC experiment and lands as a file in docs/results/cells; finished cells are never rerun.
compare-run: $(STAMP) .git
	$(BIN)/python -m dhns.compare run --datasets "$(DATASETS)" --scorers "$(SCORERS)" --arms "$(ARMS)" --seeds "$(SEEDS)"

# docs/results/README.md from the cell files (after adding finished `dvc exp show` experiments), printed too.
compare: $(STAMP)
	$(BIN)/python -m dhns.compare --seeds "$(SEEDS)"  # the whole grid: 3 datasets x 3 scorers, missing cells marked

clean-venv:
	rm -rf $(VENV)

# Every cached artifact to / from the DVC remote (default: the folder ../dhns-dvc-storage; see docs/operations.md).
push: $(STAMP) .git
	$(BIN)/dvc push

pull: $(STAMP) .git
	$(BIN)/dvc pull

# Seconds per epoch, denoiser FLOP/s, evaluation time, memory and the 10k/100k/1M scaling sweep of the
# reference config (src/dhns/bench/; `python -m dhns.bench --help`). Whole epochs take hours on a CPU:
# there use e.g. BENCH_ARGS="--batches 2 --eval --sweep --sweep-batches 5 --threads 1 --json bench.json".
BENCH_ARGS ?= --eval --sweep
bench: $(STAMP)
	$(BIN)/python -m dhns.bench $(BENCH_ARGS)

# PyKEEN's and our training step (TransE, RotatE: dim 200, batch 2000, 64 negatives, self-adversarial loss) and
# filtered evaluation on MKG-Y in one run, each against the machine's memory-bandwidth floor; then the same against
# TorchKGE (TransE only: it has no RotatE). Both are the optional `peers` extra, installed once with the pinned stack
# held fixed. A short run: PEER_ARGS="--batches 20 --peer-eval-triples 300"; steadier: --peer-epochs 3. Both runs
# read PEER_ARGS: give each its own --json in PYKEEN_ARGS and TORCHKGE_ARGS (one file in PEER_ARGS: the second wins).
PEER_ARGS ?=
PYKEEN_ARGS ?=
TORCHKGE_ARGS ?=
bench-peers: $(STAMP)
	$(BIN)/python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('pykeen', 'torchkge')))" || \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -c requirements.txt \
		-e '.[peers]'  # only when either is missing; -c holds every pinned version fixed
	$(BIN)/python -m dhns.bench --peer pykeen $(PEER_ARGS) $(PYKEEN_ARGS)
	$(BIN)/python -m dhns.bench --peer torchkge $(PEER_ARGS) $(TORCHKGE_ARGS)  # TransE: its only model of the two

# Every GPU check in one call, each part under its own timeout (scripts/gpu_suite.py: CUDA tests, the stages end to
# end with a kill and resume, torchrun, evaluation, the benchmark in fp32/tf32/bf16); summary.md under --out.
# The CPU form: GPU_SUITE_ARGS="--device cpu --tiny --out /tmp/gpu-suite".
GPU_SUITE_ARGS ?= --device cuda --out /tmp/gpu-suite
gpu-suite: $(STAMP)
	$(BIN)/python scripts/gpu_suite.py $(GPU_SUITE_ARGS)

# The project's figures (`python -m dhns.plots`).
plots: $(STAMP)
	$(BIN)/python -m dhns.plots
