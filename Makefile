# The study as a DAG of file targets. `make` alone prints this help.
# QUICK=1 runs a small sweep into build/quick/ (never touches figures/ or reports/).
# MODEL=path/to/my.keras adds a user's own model to the benchmark stages.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
PAPERMILL := $(VPY) -m papermill --log-level WARNING --no-progress-bar
lib = $(patsubst %,lib/overhead/%.py,$(1))
ENGINE_LIB := $(call lib,backends converters numpy_cnn numpy_layers worker timing envinfo data models)
BENCH_LIB := $(ENGINE_LIB) $(call lib,sweep benchview)
STARTUP_LIB := $(ENGINE_LIB) $(call lib,startup)
PIPELINE_LIB := $(ENGINE_LIB) $(call lib,pipeline breakdown)
REPORT_LIB := $(call lib,analysis plots reporttext claims render)

ifeq ($(QUICK),1)
OUT := build/quick
DATA := $(OUT)/data
FIG := $(OUT)/figures
HTML := $(OUT)/report.html
QUICK_PY := True
else
OUT := build/full
DATA := data
FIG := figures
HTML := reports/report.html
QUICK_PY := False
endif
RUNS := $(OUT)/executed
export OVERHEAD_DATA := $(abspath $(DATA))
NB_COMMON := -p quick $(QUICK_PY) -p data_dir $(abspath $(DATA))
ifneq ($(MODEL),)
NB_COMMON += -y "extra_models: ['$(abspath $(MODEL))']"
endif
# The list of user models is a file whose content changes only when MODEL does, so adding or dropping a
# user model re-runs the stages that use it (and nothing else).
EXTRA_LIST := $(OUT)/extra_models.txt
$(shell mkdir -p $(OUT); echo '$(abspath $(MODEL))' | cmp -s - $(EXTRA_LIST) || echo '$(abspath $(MODEL))' > $(EXTRA_LIST))

.PHONY: help env test report bench lab clean clean-data requirements train benchmark startup pipeline

help: ## List the targets
	@echo "make <target>   (QUICK=1 for a small sweep into build/quick/, MODEL=my.keras to add your model)"
	@grep -hE '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([^:]+):.*## (.*)/  \1|\2/' | column -t -s '|'

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

test: $(ENV_STAMP) ## Run the test suite (unit tests + papermill smoke runs of every notebook)
	$(VPY) -m pytest -q

requirements: ## Re-pin requirements.txt from requirements.in in a scratch venv
	rm -rf build/pin && $(PY) -m venv build/pin
	grep -v '^tf-keras' requirements.in > build/pin/requirements.in && build/pin/bin/pip install --quiet -r build/pin/requirements.in
	{ head -2 requirements.txt; build/pin/bin/pip freeze | grep -v '^-e\|^#'; } > requirements.txt.new && mv requirements.txt.new requirements.txt

# ---- the study -------------------------------------------------------------------------------
# Notebooks are jupytext percent sources (notebooks/NN_name.py); papermill runs their .ipynb conversion.
build/notebooks/%.ipynb: notebooks/%.py $(ENV_STAMP)
	@mkdir -p $(dir $@)
	$(VPY) -m jupytext --quiet --to ipynb $< -o $@

$(RUNS)/01_train.ipynb: build/notebooks/01_train.ipynb $(call lib,data models train) $(ENV_STAMP)
	@mkdir -p $(RUNS)
	$(PAPERMILL) $< $(@:.ipynb=.tmp.ipynb) $(NB_COMMON) && mv $(@:.ipynb=.tmp.ipynb) $@

$(RUNS)/02_benchmark.ipynb: build/notebooks/02_benchmark.ipynb $(RUNS)/01_train.ipynb $(BENCH_LIB) $(EXTRA_LIST) $(MODEL)
	$(PAPERMILL) $< $(@:.ipynb=.tmp.ipynb) $(NB_COMMON) && mv $(@:.ipynb=.tmp.ipynb) $@

$(RUNS)/03_startup.ipynb: build/notebooks/03_startup.ipynb $(RUNS)/02_benchmark.ipynb $(STARTUP_LIB) $(EXTRA_LIST)
	$(PAPERMILL) $< $(@:.ipynb=.tmp.ipynb) $(NB_COMMON) && mv $(@:.ipynb=.tmp.ipynb) $@

$(RUNS)/04_pipeline.ipynb: build/notebooks/04_pipeline.ipynb $(RUNS)/02_benchmark.ipynb $(PIPELINE_LIB) $(EXTRA_LIST) | $(RUNS)/03_startup.ipynb
	$(PAPERMILL) $< $(@:.ipynb=.tmp.ipynb) $(NB_COMMON) && mv $(@:.ipynb=.tmp.ipynb) $@

$(RUNS)/05_report.ipynb: build/notebooks/05_report.ipynb $(RUNS)/03_startup.ipynb $(RUNS)/04_pipeline.ipynb $(REPORT_LIB)
	$(PAPERMILL) $< $(@:.ipynb=.tmp.ipynb) $(NB_COMMON) -p figures_dir $(abspath $(FIG)) && mv $(@:.ipynb=.tmp.ipynb) $@

$(HTML): $(RUNS)/05_report.ipynb
	@mkdir -p $(dir $@)
	$(VPY) -m overhead.render $< $@ $(if $(filter 1,$(QUICK)),,--readme README.md --findings $(FIG)/findings.md)

train: $(RUNS)/01_train.ipynb ## Train the model ladder into data/models/
benchmark: $(RUNS)/02_benchmark.ipynb ## Benchmark every backend across models, batch sizes, threads
startup: $(RUNS)/03_startup.ipynb ## Cold start and memory per backend
pipeline: $(RUNS)/04_pipeline.ipynb ## PNG-to-label pipeline stages and the per-call decomposition
report: $(HTML) ## Rebuild the whole study into reports/report.html and figures/

bench: $(ENV_STAMP) ## NumPy-engine speed targets against tf.function, LiteRT and the GEMM peak
	$(VPY) -m overhead.enginebench

lab: $(ENV_STAMP) ## Open JupyterLab on the notebooks
	$(VPY) -m jupyter lab notebooks/

clean: ## Remove build/ (executed notebooks, quick runs); keeps data/, figures/, reports/
	rm -rf build .pytest_cache

clean-data: ## Remove generated data (models, artifacts, results); keeps the raw MNIST cache
	rm -rf data/models data/artifacts data/results
