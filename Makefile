# gesture_rnn — every target sets itself up: `make train` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel; override for another build, e.g. make install TORCH="torch==2.13.0 --index-url ..."
TORCH ?= torch==2.13.0
# optional extras besides the dev tools, e.g. make install EXTRAS=dev,peers (MiniRocket for make bench/watch)
EXTRAS ?= dev
# Re-install when pyproject.toml or the torch requirement change; each extra is installed once, so
# a target asking for fewer extras than were installed (make test after EXTRAS=dev,peers) runs no pip.
comma := ,
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH)' | md5sum | cut -c1-8)
EXTRA_STAMPS := $(patsubst %,$(VENV)/.installed-extra-%,$(subst $(comma), ,$(EXTRAS)))
ARGS ?=
PYTEST_ARGS ?=
UI_PORT ?= 5000
# make serve / make promote: the registered model, its alias and the store
MODEL ?= models:/gestures@candidate
SERVE_PORT ?= 5001
VERSION ?=
TRACKING_URI ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/outputs/mlflow.db)
SEEDS ?= 0,1,2
# the leave-one-user-out models make personalize adapts (written by make calibration)
BASE ?= outputs/calibration/best
# the new-wearer ensemble's members, one sweep per seed (written by make new_wearer)
ENSEMBLE_BASES ?= $(wildcard outputs/new_wearer/full/best/seed*)
# quiet multiruns: one line per job instead of a progress bar per epoch
QUIET := console=quiet
ABLATION_QUIET := $(QUIET) logger=none log_model=false

ZIP ?=
# Values a user types reach recipes as environment variables, quoted by the shell ("$$VERSION"),
# never pasted into a command line or into Python source
VENV_BIN := $(CURDIR)/$(BIN)
LOCAL_STORE := sqlite:///$(CURDIR)/outputs/mlflow.db
# make demo: where the page is served (a phone on the network: DEMO_HOST=0.0.0.0 with a certificate, docs/demo.md)
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
DEMO_CERT ?=
DEMO_KEY ?=
export VERSION TRACKING_URI MODEL SERVE_PORT UI_PORT ZIP VENV_BIN LOCAL_STORE DEMO_HOST DEMO_PORT DEMO_CERT DEMO_KEY

.PHONY: help install data docs train tune reproduce loso cv first_hour small_model stream spotter_screen spotter_overhead demo demo_report screenshots browser ablation compare new_wearer watch serve promote startup gpu_check calibration personalize own_gesture bench soak test test-fast test-slow lint format ui clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) $(EXTRA_STAMPS) ## Create .venv with torch and the package (editable, with dev tools; EXTRAS=dev,peers adds MiniRocket)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	@# -qq: errors only; setuptools' "Editable installation" boxes are nothing a user acts on
	$(BIN)/python -m pip install -qq -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(VENV)/.installed-extra-%: $(STAMP)
	$(BIN)/python -m pip install -qq -e '.[$*]'
	@touch $@

data: install ## Keep the dataset's zip (md5 checked) where every later command finds it: make data ZIP=/path/to/gestures-dataset.zip
	@test -n "$$ZIP" || { echo "error: ZIP is required: make data ZIP=/path/to/gestures-dataset.zip" >&2; exit 2; }
	$(BIN)/python -m gesture_rnn.data.source "$$ZIP"

train: install ## Train and test the default GRU (extra overrides: ARGS="model.hidden=256 model.layers=2")
	$(BIN)/python train.py $(ARGS)

tune: install ## Hyperparameter sweep: hyperopt TPE, 20 trials, objective val/acc_best (ARGS="hparams_search=optuna")
	$(BIN)/python tune.py -m $(ARGS)

reproduce: install ## The study's four rows over SEEDS (default 0,1,2) -> reports/study.md
	rm -rf outputs/reproduce
	$(BIN)/python train.py -m experiment=study_default trainer.max_epochs=3,10,20 seed=$(SEEDS) \
	  hydra.sweep.dir=outputs/reproduce/default $(QUIET) $(ARGS)
	$(BIN)/python train.py -m experiment=study_tuned seed=$(SEEDS) hydra.sweep.dir=outputs/reproduce/tuned $(QUIET) $(ARGS)
	$(BIN)/python -m studies.reports study outputs/reproduce/default outputs/reproduce/tuned \
	  --out reports/study.md --command "make reproduce SEEDS=$(SEEDS)"

loso: install ## Leave-one-user-out (8 folds) vs the random split (SEEDS) -> reports/loso.md
	rm -rf outputs/loso
	$(BIN)/python train.py cv=users cv.val_users=0 hydra.run.dir=outputs/loso/users $(QUIET) $(ARGS)
	$(BIN)/python train.py -m seed=$(SEEDS) hydra.sweep.dir=outputs/loso/random $(QUIET) $(ARGS)
	$(BIN)/python -m studies.reports loso outputs/loso/users outputs/loso/random \
	  --out reports/loso.md --command "make loso SEEDS=$(SEEDS)"

ablation: install ## Screen options on hard LOSO folds, evaluate experiment=gru_large fully -> reports/ablation.md
	PY=$(BIN)/python bash studies/ablation_screen.sh
	$(BIN)/python train.py cv=users cv.val_users=0 experiment=gru_large \
	  hydra.run.dir=outputs/ablation/best_loso $(ABLATION_QUIET) $(ARGS)
	$(BIN)/python train.py cv=users cv.val_users=0 \
	  hydra.run.dir=outputs/ablation/baseline_loso $(ABLATION_QUIET) $(ARGS)
	$(BIN)/python train.py -m experiment=gru_large seed=$(SEEDS) data.val_fraction=0 \
	  hydra.sweep.dir=outputs/ablation/best_random $(ABLATION_QUIET) $(ARGS)
	$(BIN)/python train.py -m seed=$(SEEDS) data.val_fraction=0 \
	  hydra.sweep.dir=outputs/ablation/baseline_random $(ABLATION_QUIET) $(ARGS)
	$(BIN)/python -m studies.reports ablation outputs/ablation/* --out reports/ablation.md \
	  --command "make ablation"

new_wearer: install ## New wearers out of the box: options screened, then 8 folds x 3 seeds, ensembles -> reports/new_wearer.md
	$(BIN)/python -m studies.new_wearer $(ARGS)

calibration: install ## Calibrated probabilities for new wearers (LOSO, validation on a held-out user) -> reports/calibration.md
	rm -rf outputs/calibration
	$(BIN)/python train.py cv=users experiment=gru_large \
	  hydra.run.dir=outputs/calibration/best $(ABLATION_QUIET) $(ARGS)
	$(BIN)/python train.py cv=users hydra.run.dir=outputs/calibration/default $(ABLATION_QUIET) $(ARGS)
	$(BIN)/python -m studies.reports calibration outputs/calibration/best outputs/calibration/default \
	  --out reports/calibration.md --command "make calibration"

own_gesture: install ## Teach each gesture to base models that never saw it, by people they never saw, k=1,3,5, beside per-user DTW templates -> reports/own_gesture.md
	$(BIN)/python -m studies.own_gesture --data "$(GESTURES_DATA)" $(ARGS)

personalize: install ## Adapt each LOSO model (BASE=outputs/calibration/best) to its user from k recordings per gesture -> reports/personalize.md (+ personalize_ensemble.md)
	@test -d $(BASE) || $(MAKE) calibration
	$(BIN)/python -m studies.personalize $(BASE) $(ARGS)
	@if [ -n "$(ENSEMBLE_BASES)" ]; then \
	  $(BIN)/python -m studies.personalize $(ENSEMBLE_BASES) --methods head ncm --shots 1 3 \
	    --out reports/personalize_ensemble.md --command "make personalize (the ensemble)" $(ARGS); \
	else echo "no ensemble bases: make new_wearer trains them"; fi

watch: install ## The watch-size model (distilled, int8), LOSO per seed in one command, vs MiniRocket -> reports/watch.md
	$(BIN)/python -m studies.watch $(ARGS)

compare: install ## Network families x 2 sizes on both protocols + CPU cost -> reports/models.md
	$(BIN)/python -m studies.compare $(ARGS)

bench: install ## Pipeline vs plain PyTorch loop, start-up, inference, MiniRocket (EXTRAS=dev,peers) -> reports/bench.md
	$(BIN)/python -m bench.benchmark $(ARGS)

cv: ## Leave-one-user-out as one command (cv=users, 1 and 2 folds at once) beside MiniRocket -> reports/cv.md
	$(MAKE) install EXTRAS=dev,peers
	$(BIN)/python -m studies.cv --data "$(GESTURES_DATA)" $(ARGS)

small_model: ## The recommended model: searched and screened over seeds 0,1 (hparams_search=new_wearer), judged on seeds 7,8,9 beside MultiRocket-Hydra and MiniRocket -> reports/small_model.md
	$(MAKE) install EXTRAS=dev,peers
	$(BIN)/python -m studies.small_model --data "$(GESTURES_DATA)" $(ARGS)

stream: install ## The spotter (train.py cv=users experiment=spotter) per held-out user on two stream constructions, beside a sliding window -> reports/stream.md
	$(BIN)/python -m studies.stream --data "$(GESTURES_DATA)" $(ARGS)

demo: install ## The wearer's page on http://127.0.0.1:8000: record your gestures, recognise them live (first run trains its models; needs the dataset)
	$(BIN)/python -m demo.build
	$(BIN)/python -m demo.serve --host "$$DEMO_HOST" --port "$$DEMO_PORT" $${DEMO_CERT:+--cert "$$DEMO_CERT"} $${DEMO_KEY:+--key "$$DEMO_KEY"}

screenshots: install browser ## The wearer's page on a desktop and at a phone's width -> docs/images/page-*.png (after make demo)
	$(BIN)/python -m demo.screenshots

demo_report: install ## The page measured in headless Chromium: load time, sizes, time per gesture -> reports/demo.md and demo-*.png
	$(BIN)/python -m demo.measure $(ARGS)

browser: install ## What the page's browser tests need: Debian's chromium (installed when missing, as root) and onnxruntime-web (npm)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is missing and this user cannot install it: the browser tests will be skipped"; fi; }
	@$(BIN)/python -m demo.build --web-only || echo "note: no onnxruntime-web: the browser tests will be skipped"

first_hour: install ## The README's first commands as a newcomer types them, each timed whole -> reports/first_hour.md
	$(BIN)/python -m studies.first_hour --data "$(GESTURES_DATA)" $(ARGS)

startup: install ## Where train.py's start-up goes, up to its first step, beside import lightning -> reports/startup.md
	$(BIN)/python -m bench.startup --data "$(GESTURES_DATA)" $(ARGS)

gpu_check: install ## On a machine with a GPU: trainer=gpu and trainer=ddp trainings, make bench on the GPU (~5 min)
	PY=$(BIN)/python bash bench/gpu_check.sh

spotter_screen: install ## The spotter's training options compared on the folds' validation users only -> reports/spotter_screen.md
	$(BIN)/python -m studies.spotter_screen $(ARGS)

spotter_overhead: install ## One fold of train.py experiment=spotter beside a plain PyTorch loop -> reports/spotter_overhead.md
	$(BIN)/python -m bench.spotter_overhead $(ARGS)

soak: install ## 50 short trainings in one process and in new ones: no memory, fd or MLflow-run leaks
	$(BIN)/python -m bench.soak $(ARGS)

test: install browser ## Run the test suite (real-data tests need GESTURES_DATA=/path/to/gestures-dataset.zip)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# test files that are integration tests as a whole: make test-fast does not even import them
INTEGRATION_FILES := $(shell grep -l '^pytestmark = pytest.mark.integration' tests/*.py)

test-fast: install ## Unit tests only (no training beyond a few batches, no subprocess): the edit-test loop
	$(BIN)/python -m pytest -m "not slow and not integration" $(addprefix --ignore=,$(INTEGRATION_FILES)) $(PYTEST_ARGS)

test-slow: install ## Also run the slow tests (full-length trainings on the real data)
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

docs: install ## Build the documentation site (MkDocs, strict: a broken link fails) into outputs/site
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

serve: install ## Serve MODEL (default models:/gestures@candidate) over HTTP on 127.0.0.1:SERVE_PORT with MLflow
	MLFLOW_TRACKING_URI="$$TRACKING_URI" "$$VENV_BIN/python" -m gesture_rnn.deploy.serve "$$MODEL" --port "$$SERVE_PORT"

promote: install ## Move the champion alias of the gestures model to VERSION (make promote VERSION=3)
	@test -n "$$VERSION" || { echo "error: VERSION is required: make promote VERSION=3" >&2; exit 2; }
	$(BIN)/python -m gesture_rnn.tracking.registry promote "$$VERSION" --tracking-uri "$$TRACKING_URI"

ui: install ## MLflow UI for the local store; prints the link to the runs table (UI_PORT=... to change)
	@mkdir -p outputs
	@$(BIN)/python -m gesture_rnn.tracking.ui --store "$$LOCAL_STORE" --port "$$UI_PORT"

clean: ## Remove everything runs generate (outputs/: runs, checkpoints, MLflow store) and caches
	rm -rf outputs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
