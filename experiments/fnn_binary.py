"""The article's feed-forward binary classifier on the Wisconsin breast-cancer data.

Dense 64 relu, Dense 64 relu, Dense 1 (sigmoid folded into the binary
cross-entropy, computed on logits), Adam 1e-3, batch 32, on the ten "mean"
features; stratified 80/20 split fixed by dataset.split_seed.

Run:     make train-fnn
         (= python -m nn_jax train --config experiments/fnn_binary.py --workdir runs/fnn_binary)
Expect:  test accuracy and ROC AUC as in README.md "Results" (3 seeds, 2-core CPU), a few seconds.
"""

from nn_jax.config import base_config


def get_config():
  config = base_config()
  config.name = "fnn_binary"
  config.model.update({"name": "mlp", "hidden_units": (64, 64), "activation": "relu", "initializer": "lecun"})
  config.dataset.update({"name": "breast_cancer", "test_fraction": 0.2, "split_seed": 0})
  config.loss = "sigmoid_binary_cross_entropy"
  config.optimizer.update({"name": "adam", "learning_rate": 1e-3})
  config.num_epochs = 50
  config.batch_size = 32
  config.log_every_epochs = 10
  config.checkpoint_every_epochs = 10
  config.checkpoint_best_metric = "test/auc"
  return config
