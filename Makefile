# Every target creates (or reuses) the project-local virtualenv .venv, installs
# the package into it, then runs. Nothing relies on packages installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

# Offline machines: use a prepared MNIST copy in the repo's git-ignored data/ folder, else the one
# beside the project, unless the caller already chose a TFDS_DATA_DIR.
LOCAL_TFDS := $(abspath data/tfds)
SHARED_TFDS := $(abspath ../shared/data/tfds)
ifeq ($(origin TFDS_DATA_DIR),undefined)
ifneq ($(wildcard $(LOCAL_TFDS)/mnist/3.0.1/dataset_info.json),)
export TFDS_DATA_DIR := $(LOCAL_TFDS)
else ifneq ($(wildcard $(SHARED_TFDS)/mnist/3.0.1/dataset_info.json),)
export TFDS_DATA_DIR := $(SHARED_TFDS)
endif
endif

TRAIN := $(PY) -m nn_jax train

.PHONY: venv test test-fast train-mlp train-cnn train-fnn train-rnn train-lstm train-gru sweep report bench \
        wheelhouse device-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# make test runs the tests in parallel processes (pytest-xdist), one per core; TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= auto

test: $(STAMP)  # everything: what CI runs
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

test-fast: $(STAMP)  # the unit tests, under a minute: run them constantly
	$(PY) -m pytest -q -m "not slow" tests

train-mlp: $(STAMP)
	$(TRAIN) --config experiments/house_mlp.py --workdir $(or $(WORKDIR),runs/house_mlp) $(ARGS)

train-cnn: $(STAMP)
	$(TRAIN) --config experiments/cnn_mnist.py --workdir $(or $(WORKDIR),runs/cnn_mnist) $(ARGS)

train-fnn: $(STAMP)
	$(TRAIN) --config experiments/fnn_binary.py --workdir $(or $(WORKDIR),runs/fnn_binary) $(ARGS)

train-rnn: $(STAMP)
	$(TRAIN) --config experiments/recurrent_series.py:simple --workdir $(or $(WORKDIR),runs/rnn_series) $(ARGS)

train-lstm: $(STAMP)
	$(TRAIN) --config experiments/recurrent_series.py:lstm --workdir $(or $(WORKDIR),runs/lstm_series) $(ARGS)

train-gru: $(STAMP)
	$(TRAIN) --config experiments/recurrent_series.py:gru --workdir $(or $(WORKDIR),runs/gru_series) $(ARGS)

sweep: $(STAMP)
	@test -n "$(SWEEP)" || { echo "make sweep: give SWEEP=experiments/sweeps/NAME.py" >&2; exit 2; }
	$(PY) -m nn_jax sweep --sweep $(SWEEP) --workdir $(or $(WORKDIR),runs/sweeps/$(basename $(notdir $(SWEEP)))) --launcher $(or $(LAUNCHER),local) $(ARGS)

report: $(STAMP)
	@test -n "$(DIR)" || { echo "make report: give DIR=runs/sweeps/NAME (and OUT=... to write elsewhere)" >&2; exit 2; }
	$(PY) -m nn_jax report $(DIR) $(if $(OUT),--out $(OUT)) $(if $(METRIC),--metric $(METRIC))

bench: $(STAMP)
	$(PY) -m benchmarks.bench

# --- Offline accelerator nodes ---------------------------------------------------------------
# A node with CUDA JAX, flax, optax and orbax-checkpoint preinstalled (and no internet) still lacks a
# few packages: `make wheelhouse` fetches them for the node's Python into wheelhouse/ (tools/wheelhouse.py).
PYTHON_VERSION ?= 3.12

wheelhouse: $(STAMP)
	$(PY) -m tools.wheelhouse --python-version $(PYTHON_VERSION) --dest wheelhouse

# On an accelerator node (wheelhouse/ but no .venv): install what wheelhouse/ holds next to the node's
# own packages (never touching its jax), then check the device end to end (tools/device_check.py).
# Anywhere else the project's .venv runs it unchanged.
DEVICE_SITE := .device-site
DEVICE_PY := $(PY)
DEVICE_DEPS := $(STAMP)
ifneq ($(wildcard wheelhouse/*.whl),)
ifeq ($(wildcard $(VENV)/bin/python),)
DEVICE_PY := PYTHONPATH=$(abspath $(DEVICE_SITE)):$(CURDIR) $(PYTHON)
DEVICE_DEPS := $(DEVICE_SITE)/.installed
endif
endif

$(DEVICE_SITE)/.installed: $(wildcard wheelhouse/*.whl)
	$(PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --target $(DEVICE_SITE) wheelhouse/*.whl
	touch $@

device-check: $(DEVICE_DEPS)
	$(DEVICE_PY) -m tools.device_check $(if $(OUT_DIR),--out $(OUT_DIR)) $(ARGS)

clean:
	rm -rf runs .pytest_cache $(DEVICE_SITE)
