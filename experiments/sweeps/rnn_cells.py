"""Does a GRU perform about as well as an LSTM, and more cheaply? And what does the plain RNN lose?

Cell {simple, lstm, gru} x units {16, 50, 128} x 5 seeds on the yearly sunspots,
all with tanh (one activation for a fair comparison), 30 epochs, batch 32.

Run:     make sweep SWEEP=experiments/sweeps/rnn_cells.py WORKDIR=runs/sweeps/rnn_cells
         make report DIR=runs/sweeps/rnn_cells OUT=experiments/results/rnn_cells
Result:  experiments/results/rnn_cells/ (test RMSE and training time per run; 2-core CPU).
"""


def get_sweep():
  return {
      "config": "experiments/recurrent_series.py:lstm",
      "overrides": {"model.activation": "tanh", "progress": False, "checkpoint_every_epochs": 30},
      "axes": {"model.cell": ["simple", "lstm", "gru"], "model.units": [16, 50, 128]},
      "seeds": [0, 1, 2, 3, 4],
  }
