"""The LSTM on the sunspots searched: learning rate, units and window, ranked on a validation split.

32 trials (quasi-random, search_seed 0) x 3 seeds: learning rate log-uniform in [3e-4, 3e-2],
units one of {16, 32, 50, 64, 128}, window one of {5, 10, 20} years; tanh (as the rnn_cells grid),
30 epochs, batch 32. The last 20% of the training years are a validation split; successive
halving on its loss every 10 epochs keeps the better half, so 8 trials train all 30 epochs. The
test split is only reported.

Run:     make sweep SWEEP=experiments/sweeps/lstm_search.py WORKDIR=runs/sweeps/lstm_search
         make report DIR=runs/sweeps/lstm_search OUT=experiments/results/lstm_search METRIC=test/rmse
Result:  experiments/results/lstm_search/; against the rnn_cells grid's LSTM points in docs/results.md,
         "Searching instead of gridding".
"""


def get_sweep():
  return {
      "config": "experiments/recurrent_series.py:lstm",
      "overrides": {"model.activation": "tanh", "progress": False, "checkpoint_every_epochs": 30,
                    "dataset.validation_fraction": 0.2},
      "space": {"optimizer.learning_rate": ("log_uniform", 3e-4, 3e-2),
                "model.units": ("choice", [16, 32, 50, 64, 128]),
                "dataset.window": ("choice", [5, 10, 20])},
      "trials": 32,
      "seeds": [0, 1, 2],
      "halving": {"metric": "validation/loss", "every_epochs": 10, "keep": 0.5},
  }
