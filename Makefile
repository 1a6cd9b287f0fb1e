# sempos: `make reproduce` runs the whole DAG on params.yaml; `make test` runs the test suite.
# Both do every set-up step first (venv, Python packages, the Fashion-MNIST prerequisite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sempos-installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
CORES ?= 2

.PHONY: setup data-prereqs reproduce test test-fast bench mutation dvc-yaml lint clean-results detectron2 gpu-wheels gpu-check

setup: $(STAMP) data-prereqs

# The venv takes about 6 GB (torch 2.14.1 is a CUDA build); without the room pip stops half-way with
# "No space left on device", so say so before starting. The stamp is written last: a failed install reruns.
MIN_FREE_GB ?= 7

$(STAMP): pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print $$4}'); \
	if [ "$$free" -lt $$(( $(MIN_FREE_GB) * 1048576 )) ]; then \
	  echo "error: setup needs $(MIN_FREE_GB) GiB free for $(VENV) (torch's CUDA build), but $(CURDIR) has" \
	    "$$(( free / 1048576 )) GiB: free some space (or set MIN_FREE_GB=N to try with less)" >&2; exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The pinned torch/torchvision pair installs from local files on the build machines.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[pipeline,test]'
	touch $@

# Fashion-MNIST: the download stage takes a verified local copy (Debian's dataset-fashion-mnist) or the
# official files. Offline and as root we install the Debian package; otherwise the stage explains the fix.
data-prereqs:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	     (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) && \
	    echo "installed dataset-fashion-mnist"; \
	  else \
	    echo "note: dataset-fashion-mnist is not installed; the download stage will fetch the official files"; \
	  fi; \
	fi

reproduce: setup
	snakemake --cores $(CORES)

test: setup
	$(PY) -m pytest -q -rs

test-fast: setup
	$(PY) -m pytest -q -m "not e2e"

bench: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/throughput.py
	$(PY) bench/mine.py
	$(PY) bench/loader.py

# Optional Detectron2 backend, built from a source checkout (README "Detectron2 (optional)").
D2SRC ?= ../detectron2
detectron2: setup
	@test -d $(D2SRC) || { echo "clone it first: git clone https://github.com/facebookresearch/detectron2 $(D2SRC)"; exit 2; }
	$(PY) -m pip install --quiet 'setuptools<81'
	$(PY) -m pip install --no-build-isolation $(D2SRC)
	$(PY) -c "import detectron2._C, detectron2.model_zoo; print('detectron2 ok')"

# Mutation testing of the core modules with mutmut (pinned in the `mutation` extra; pyproject.toml's
# [tool.mutmut] names the modules and the tests). Not part of `make test`; docs/results.md has the score.
# A fresh run each time; MUTANTS narrows it (e.g. MUTANTS='sempos.losses*'), NICE lowers its priority.
# tools/mutmut_run.py skips the equivalent mutants listed in tools/mutation_equivalents.yaml;
# EQUIVALENTS=run runs them as well; EQUIVALENTS=check runs only them (each should still survive).
NICE ?= 10
MUTANTS ?=
EQUIVALENTS ?= skip
EQUIVALENTS_FLAG_skip :=
EQUIVALENTS_FLAG_run := --run-equivalents
EQUIVALENTS_FLAG_check := --only-equivalents
EQUIVALENTS_FLAG = $(if $(filter skip run check,$(EQUIVALENTS)),$(EQUIVALENTS_FLAG_$(EQUIVALENTS)),$\
  $(error EQUIVALENTS is skip, run or check, not '$(EQUIVALENTS)'))
mutation: setup
	$(PY) -m pip install --quiet -e '.[mutation]'
	rm -rf mutants
	start=$$(date +%s); nice -n $(NICE) $(PY) tools/mutmut_run.py $(EQUIVALENTS_FLAG) \
	  --max-children $(CORES) $(MUTANTS) && \
	  echo "mutmut run took $$(( $$(date +%s) - start )) s" | tee mutants/elapsed.txt
	$(VENV)/bin/mutmut results --all true | $(PY) tools/mutation_summary.py --times mutants/mutant-times.tsv \
	  $(if $(filter check,$(EQUIVALENTS)),--check-equivalents mutants/equivalents.txt) > mutants/summary.md
	cat mutants/elapsed.txt mutants/summary.md

# The GPU check (bench/gpu_check.py; docs/results.md "GPU check"). Here, where pip works: `make gpu-wheels`
# stages .gpu-wheels/ and .gpu-data/. On the GPU machine (its own python3, no venv, no internet):
# `make gpu-check GPU_CHECK_ARGS="--copy-to $$OUT"` with those two folders carried.
GPU_PYTHON ?= python3
GPU_CHECK_ARGS ?=

gpu-wheels: setup
	$(PY) bench/gpu_wheels.py

gpu-check:
	$(GPU_PYTHON) bench/gpu_check.py $(GPU_CHECK_ARGS)

# Undefined names, unused imports/variables and syntax errors (ruff's pyflakes rules, pyproject [tool.ruff]).
lint: setup
	$(PY) -m pip install --quiet -e '.[lint]'
	$(PY) -m ruff check src tests bench tools

dvc-yaml: setup
	$(PY) -m sempos.pipeline dvc -o dvc.yaml
	$(PY) -m sempos.pipeline smk

clean-results:
	rm -rf runs features results pairs logs .sempos
