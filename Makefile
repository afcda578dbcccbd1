# Everything a fresh clone needs: `make train` and `make test` create .venv,
# install the package with its dependencies, and run. A second run reinstalls
# nothing unless pyproject.toml changed.
#
#   make train                         # the built-in demo (see README)
#   make train ARGS="model=paper data.resize_size=256"
#   make test                          # the whole suite
#   make test-fast                     # without the slow and multi-process groups
#   make test PYTEST_ARGS="-k lrn -x"
#   make install TF=cuda               # TensorFlow's CUDA build, on GPU machines
#   make horovod                       # Horovod with TensorFlow + Gloo (built once, wheel cached)
#   make check                         # alexnet-doctor: this machine's devices, before a long job
#   make check ARGS="--records /data/records"

PYTHON ?= python3
VENV ?= .venv
TF ?= cpu
ARGS ?=
PYTEST_ARGS ?=

HOROVOD_VERSION ?= 0.28.1

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(TF)
HOROVOD_STAMP := $(VENV)/.horovod-$(HOROVOD_VERSION)

.PHONY: install horovod train test test-fast test-security check lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "alexnet_dist needs Python >= 3.11; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(TF),dev,slurm]"
	rm -f $(VENV)/.installed-*
	touch $@

# The first build takes minutes; the wheel is cached in ~/.cache/alexnet_dist/wheels.
horovod: $(HOROVOD_STAMP)

$(HOROVOD_STAMP): $(STAMP) tools/build_horovod.sh $(wildcard tools/horovod/*.patch)
	tools/build_horovod.sh $(BIN)/python $(HOROVOD_VERSION)
	touch $@

train: install
	$(BIN)/alexnet-train $(ARGS)

# Two workers (pytest-xdist): much of the suite waits on processes, timeouts and Slurm,
# so two keep both cores busy. The Slurm tests share one worker and its test cluster.
# PYTEST_ARGS="-n 0" runs it in one process.
PARALLEL := -n 2 --dist loadgroup

test: install horovod
	$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

# The inner loop of development: what needs neither several processes nor long runs.
FAST := not slow and not multiprocess and not slurm and not faults and not netlab

test-fast: install
	$(BIN)/python -m pytest $(PARALLEL) -m "$(FAST)" $(PYTEST_ARGS)

# The trust boundaries alone (docs/security.md).
test-security: install horovod
	$(BIN)/python -m pytest $(PARALLEL) -m security $(PYTEST_ARGS)

check: install horovod
	$(BIN)/alexnet-doctor $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs outputs .pytest_cache .ruff_cache
