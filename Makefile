# resm: set-up, tests and the demo job. Everything installs into ./.venv.
#   make demo   set up, then run the main job on what ships in the repository
#   make test   set up, lint, then run the test suite (what CI runs)
#   make lint   ruff check and ruff format --check (configured in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned: on the development machines 2.13.0 is a local CPU wheel; an
# unpinned torch pulls several GB of CUDA packages. On a GPU machine set TORCH_SPEC to the
# build you want (e.g. TORCH_SPEC="torch --index-url .../cu128").
TORCH_SPEC ?= torch==2.13.0
DEMO ?= runs/demo

.PHONY: setup demo lint test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(TORCH_SPEC)
	# deepspeed ships as a source package that imports torch while building: build it
	# against the torch just installed instead of an isolated (CUDA) one.
	$(PY) -m pip install -q --no-build-isolation deepspeed
	$(PY) -m pip install -q --no-build-isolation -e ".[dev,plot]"
	touch $@

setup: $(VENV)/.installed

# the main job: fold the example RNAs with the structure model that ships in the package
demo: setup
	$(VENV)/bin/resm fold examples/rna.fasta -o $(DEMO)/structures.dbn --plot $(DEMO)/plots \
		--reference examples/known.dbn --report $(DEMO)/scores.tsv
	cat $(DEMO)/structures.dbn
	cat $(DEMO)/scores.tsv

LINTED := resm tests experiments

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

test: setup lint
	$(PY) -m pytest -q

bench: setup
	$(PY) experiments/bench_forward.py --out experiments/results/forward_cpu.md

clean:
	rm -rf $(VENV) runs .pytest_cache
