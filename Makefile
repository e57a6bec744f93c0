# Every target creates (or reuses) the project-local virtualenv .venv, installs
# the package into it, then runs. Nothing relies on packages installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

# Offline machines: use the prepared MNIST beside the project when there is one,
# unless the caller already chose a TFDS_DATA_DIR.
SHARED_TFDS := $(abspath ../shared/data/tfds)
ifeq ($(origin TFDS_DATA_DIR),undefined)
ifneq ($(wildcard $(SHARED_TFDS)/mnist/3.0.1/dataset_info.json),)
export TFDS_DATA_DIR := $(SHARED_TFDS)
endif
endif

TRAIN := $(PY) -m nn_jax train

.PHONY: venv test train-mlp train-cnn train-fnn train-rnn train-lstm train-gru sweep report bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q tests

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
	$(PY) -m nn_jax sweep --sweep $(SWEEP) --workdir $(or $(WORKDIR),runs/sweeps/$(basename $(notdir $(SWEEP))))

report: $(STAMP)
	@test -n "$(DIR)" || { echo "make report: give DIR=runs/sweeps/NAME (and OUT=... to write elsewhere)" >&2; exit 2; }
	$(PY) -m nn_jax report $(DIR) $(if $(OUT),--out $(OUT)) $(if $(METRIC),--metric $(METRIC))

bench: $(STAMP)
	$(PY) -m nn_jax.bench

clean:
	rm -rf runs .pytest_cache
