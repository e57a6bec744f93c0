"""The house MLP searched rather than gridded: learning rate, hidden units and initializer scale.

64 trials (quasi-random, search_seed 0), one seed each: learning rate log-uniform in [0.003, 1],
hidden units one of the grid's {1, 2, 4, 8, 16}, the initial weights' scale log-uniform in
[0.25, 4] (1: the article's standard normal); otherwise the article's setup (full-batch gradient
descent, 2000 epochs). Successive halving on the training loss every 250 epochs keeps the better
half, so 3 trials train all 2000 epochs.

Run:     make sweep SWEEP=experiments/sweeps/house_mlp_search.py WORKDIR=runs/sweeps/house_mlp_search
         make report DIR=runs/sweeps/house_mlp_search OUT=experiments/results/house_mlp_search METRIC=train/rmse
Result:  experiments/results/house_mlp_search/; against the grid (experiments/sweeps/house_mlp.py) in
         docs/results.md, "Searching instead of gridding".
"""


def get_sweep():
  return {
      "config": "experiments/house_mlp.py",
      "overrides": {"progress": False, "checkpoint_every_epochs": 2000, "predict_examples": ()},
      "space": {"optimizer.learning_rate": ("log_uniform", 0.003, 1.0),
                "model.hidden_units": ("choice", [(1,), (2,), (4,), (8,), (16,)]),
                "model.initializer_scale": ("log_uniform", 0.25, 4.0)},
      "trials": 64,
      "seeds": [0],
      "halving": {"metric": "train/loss", "every_epochs": 250, "keep": 0.5},
  }
