"""Do 4 sigmoid units suffice for the house prices, and is lr 0.01 right?

Hidden units {1, 2, 4, 8, 16} x learning rate {0.003, 0.01, 0.03, 0.1} x 5 seeds,
otherwise the article's setup (full-batch gradient descent, 2000 epochs).

Run:     make sweep SWEEP=experiments/sweeps/house_mlp.py WORKDIR=runs/sweeps/house_mlp
         make report DIR=runs/sweeps/house_mlp OUT=experiments/results/house_mlp
Result:  experiments/results/house_mlp/ (final training loss and RMSE in t€; 2-core CPU).
"""


def get_sweep():
  return {
      "config": "experiments/house_mlp.py",
      "overrides": {"progress": False, "checkpoint_every_epochs": 2000, "predict_examples": ()},
      "axes": {"model.hidden_units": [(1,), (2,), (4,), (8,), (16,)], "optimizer.learning_rate": [0.003, 0.01, 0.03, 0.1]},
      "seeds": [0, 1, 2, 3, 4],
  }
