# The study as a DAG of file targets. `make` alone prints this help.
# QUICK=1 runs a small sweep into build/quick/ (never touches figures/ or reports/).
# MODEL=path/to/my.keras adds a user's own model to the benchmark stages.
# Notebooks are jupytext percent sources (notebooks/NN_name.py); papermill runs their .ipynb conversion
# (build/notebooks/), and the executed copies with outputs land in build/<full|quick>/executed/.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
PAPERMILL := $(VPY) -m papermill --log-level WARNING --no-progress-bar

ifeq ($(QUICK),1)
OUT := build/quick
DATA := $(OUT)/data
FIG := $(OUT)/figures
HTML := $(OUT)/report.html
PARAMS := params/quick.yaml
README_FILE :=
else
OUT := build/full
DATA := data
FIG := figures
HTML := reports/report.html
PARAMS := params/full.yaml
README_FILE := README.md
endif
RUNS := $(OUT)/executed
export OVERHEAD_DATA := $(abspath $(DATA))
# The study's design is data: $(PARAMS) (its key `study` becomes every notebook's `study` parameter).
NB_COMMON := -f $(PARAMS) -p data_dir $(abspath $(DATA))
ifneq ($(MODEL),)
NB_COMMON += -y "extra_models: ['$(abspath $(MODEL))']"
endif
# The list of user models is a file whose content changes only when MODEL does, so adding or dropping a
# user model re-runs the stages that use it (and nothing else).
EXTRA_LIST := $(OUT)/extra_models.txt
$(shell mkdir -p $(OUT); echo '$(abspath $(MODEL))' | cmp -s - $(EXTRA_LIST) || echo '$(abspath $(MODEL))' > $(EXTRA_LIST))

# ---- dependencies derived from the package --------------------------------------------------
# build/deps/NN_name.d lists every lib/overhead file the notebook imports, transitively (lib/overhead/deps.py
# reads the imports with ast, standard library only: no TensorFlow, no .venv needed). A module a stage
# starts to import is picked up without editing this file; touching one re-runs exactly the stages using it.
PKG_FILES := $(shell find lib/overhead \( -name '*.py' -o -name '*.j2' \) -not -path '*/__pycache__/*' 2>/dev/null)
DEPGEN = $(if $(wildcard $(VPY)),$(VPY),$(PY)) lib/overhead/deps.py
STAGES := $(patsubst notebooks/%.py,%,$(wildcard notebooks/[0-9][0-9]_*.py))
DEPFILES := $(STAGES:%=build/deps/%.d) build/deps/render.d

build/deps/%.d: notebooks/%.py $(PKG_FILES)
	@mkdir -p $(dir $@)
	@$(DEPGEN) $< --target '$$(RUNS)/$*.ipynb' > $@.tmp && mv $@.tmp $@

build/deps/render.d: $(PKG_FILES)
	@mkdir -p $(dir $@)
	@$(DEPGEN) overhead.report.render --target '$$(HTML) render' > $@.tmp && mv $@.tmp $@

ifneq ($(filter-out help clean clean-data env requirements,$(MAKECMDGOALS)),)
-include $(DEPFILES)
endif

.PHONY: help env lint test test-fast report render bench apps lab clean clean-data requirements train benchmark startup pipeline loadgen spread versions

help: ## List the targets
	@echo "make <target>   (QUICK=1 for a small sweep into build/quick/, MODEL=my.keras to add your model)"
	@grep -hE '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([^:]+):.*## (.*)/  \1|\2/' | column -t -s '|'
	@echo "Notebooks: notebooks/NN_name.py (jupytext; open with make lab). Executed copies with outputs:"
	@echo "  build/full/executed/NN_name.ipynb after make report (build/quick/executed/ with QUICK=1)."

env: $(ENV_STAMP) ## Build .venv from the pinned requirements.txt (re-runs only when they change)

$(ENV_STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run make PY=/path/to/python3.11" >&2; exit 2; }
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade "pip<26"
	$(VPY) -m pip install --quiet -r requirements.txt
	$(VPY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(VPY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# pytest-xdist spreads the test files over every logical CPU (-n logical: "auto" counts physical
# cores, one on a 2-vCPU SMT pair); a file's tests stay on one worker
# (--dist loadfile), so a module's fixture (a converted model, a rendered report) is built once.
PYTEST := $(VPY) -m pytest -q -n logical --dist loadfile

test: lint ## Lint, then the whole test suite (unit tests + papermill smoke runs of every notebook)
	$(PYTEST)

lint: $(ENV_STAMP) ## ruff: syntax errors, undefined names, unused imports and variables (rules in pyproject.toml)
	$(VPY) -m ruff check lib tests notebooks

test-fast: $(ENV_STAMP) ## Unit tests only: no notebook runs, no large models (-m "not slow")
	$(PYTEST) -m "not slow"

requirements: ## Re-pin requirements.txt from requirements.in in a scratch venv
	rm -rf build/pin && $(PY) -m venv build/pin
	grep -v '^tf-keras' requirements.in > build/pin/requirements.in && build/pin/bin/pip install --quiet -r build/pin/requirements.in
	{ head -2 requirements.txt; build/pin/bin/pip freeze | grep -v '^-e\|^#'; } > requirements.txt.new && mv requirements.txt.new requirements.txt

# ---- the study -------------------------------------------------------------------------------
# Each stage: its notebook's .ipynb conversion, the stage(s) it reads from, and (from build/deps/*.d) the
# package files it imports. The report stage is the render step: `make render` runs the same recipe on the
# committed results alone.
build/notebooks/%.ipynb: notebooks/%.py $(PARAMS) $(ENV_STAMP)
	@mkdir -p $(dir $@)
	$(VPY) -m jupytext --quiet --to ipynb $< -o $@

RUN_NB = $(PAPERMILL) $< $(@:.ipynb=.tmp.ipynb) $(NB_COMMON) $(1) && mv $(@:.ipynb=.tmp.ipynb) $@

$(RUNS)/01_train.ipynb: build/notebooks/01_train.ipynb $(ENV_STAMP)
	@mkdir -p $(RUNS)
	$(call RUN_NB)

$(RUNS)/02_benchmark.ipynb: build/notebooks/02_benchmark.ipynb $(RUNS)/01_train.ipynb $(EXTRA_LIST) $(MODEL)
	$(call RUN_NB)

$(RUNS)/03_startup.ipynb: build/notebooks/03_startup.ipynb $(RUNS)/02_benchmark.ipynb $(EXTRA_LIST)
	$(call RUN_NB)

$(RUNS)/04_pipeline.ipynb: build/notebooks/04_pipeline.ipynb $(RUNS)/02_benchmark.ipynb $(EXTRA_LIST) | $(RUNS)/03_startup.ipynb
	$(call RUN_NB)

$(RUNS)/05_loadgen.ipynb: build/notebooks/05_loadgen.ipynb $(RUNS)/01_train.ipynb $(EXTRA_LIST) | $(RUNS)/04_pipeline.ipynb
	$(call RUN_NB)

# One environment per TensorFlow release under $(DATA)/envs/ (uv, reused); QUICK=1 measures the current one only.
$(RUNS)/07_versions.ipynb: build/notebooks/07_versions.ipynb $(RUNS)/01_train.ipynb | $(RUNS)/05_loadgen.ipynb
	$(call RUN_NB)

# The render step: the report notebook on every machine's results under $(DATA)/results/, then the HTML
# (and, for the full run, the README findings block).
RENDER_NB = $(PAPERMILL) build/notebooks/06_report.ipynb $(RUNS)/06_report.tmp.ipynb $(NB_COMMON) \
	-p figures_dir $(abspath $(FIG)) && mv $(RUNS)/06_report.tmp.ipynb $(RUNS)/06_report.ipynb
RENDER_HTML = $(VPY) -m overhead.report.render $(RUNS)/06_report.ipynb $(HTML) \
	$(if $(README_FILE),--readme $(README_FILE) --findings $(FIG)/findings.md)

$(RUNS)/06_report.ipynb: build/notebooks/06_report.ipynb $(RUNS)/03_startup.ipynb $(RUNS)/04_pipeline.ipynb \
	$(RUNS)/05_loadgen.ipynb $(RUNS)/07_versions.ipynb
	@mkdir -p $(RUNS)
	$(RENDER_NB)

$(HTML): $(RUNS)/06_report.ipynb
	@mkdir -p $(dir $@)
	$(RENDER_HTML)

train: $(RUNS)/01_train.ipynb ## Train the model ladder into data/models/
benchmark: $(RUNS)/02_benchmark.ipynb ## Benchmark every backend across models, batch sizes, threads
startup: $(RUNS)/03_startup.ipynb ## Cold start and memory per backend
pipeline: $(RUNS)/04_pipeline.ipynb ## PNG-to-label pipeline stages and the per-call decomposition
loadgen: $(RUNS)/05_loadgen.ipynb ## Serve every path under MLPerf LoadGen: Single-Stream p90, Server max QPS, HTTP
versions: $(RUNS)/07_versions.ipynb ## Every path in TensorFlow 2.12 ... 2.21 (one uv environment each in data/envs/)
report: $(HTML) ## Rebuild the whole study (every stage that changed), then the render step

render: build/notebooks/06_report.ipynb $(ENV_STAMP) ## Re-render reports/report.html, figures/, README findings from the committed data/results/ (no measuring)
	@mkdir -p $(RUNS) $(dir $(HTML))
	$(RENDER_NB)
	$(RENDER_HTML)

# OpenBLAS worker threads busy-wait ~0.1 s after each multi-threaded call before sleeping; the GEMM reference is
# timed interleaved with the engines and its spinning threads slowed whichever engine ran next (ResNet-18 b1
# numpy: 27 ms -> 41 ms after a 2048^3 GEMM), so they park at once. OpenBLAS reads the variable when it loads.
# The engine's targets are set at batch 1 on one thread (BENCH_THREADS=2 measures every engine on two).
BENCH_THREADS ?= 1
bench: $(ENV_STAMP) ## NumPy-engine speed targets against tf.function, LiteRT and the GEMM peak, ladder cases and Keras Applications, BENCH_THREADS=1 (QUICK=1: short budgets)
	OPENBLAS_THREAD_TIMEOUT=4 TF_CPP_MIN_LOG_LEVEL=3 $(VPY) -m overhead.experiments.enginebench --apps --threads $(BENCH_THREADS) $(if $(filter 1,$(QUICK)),--quick)

apps: $(ENV_STAMP) ## Every path on each Keras Applications family (overhead check, batch 1) into $(DATA)/results/<machine>/apps.csv
	$(VPY) -m overhead.experiments.apps

spread: $(ENV_STAMP) ## Why TF paths' fresh processes disagree: TF paths under oneDNN off, pinned, jemalloc/tcmalloc, huge pages, no ASLR (~10 min; QUICK=1: 1 process each)
	$(VPY) -m overhead.experiments.spread $(if $(filter 1,$(QUICK)),--quick)

# JupyterLab opens the jupytext .py notebooks as notebooks: jupytext's lab extension is installed with it,
# and this venv-local settings override makes "Jupytext Notebook" the default viewer of Python files.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
USER_ID ?= $(shell id -u)   # JupyterLab refuses to run as root (uid 0, e.g. in a container) without --allow-root
$(LAB_SETTINGS): $(ENV_STAMP)
	$(VENV)/bin/jupytext-config --settings-file $@ set-default-viewer python

lab: $(LAB_SETTINGS) ## Open JupyterLab on notebooks/ (the .py files open as notebooks; outputs: build/*/executed/)
	$(VPY) -m jupyter lab $(if $(filter 0,$(USER_ID)),--allow-root) notebooks/

clean: ## Remove build/ (executed notebooks, quick runs); keeps data/, figures/, reports/
	rm -rf build .pytest_cache

clean-data: ## Remove generated data (models, artifacts, results; `git restore data/results` brings back the committed ones); keeps raw MNIST
	rm -rf data/models data/artifacts data/results
