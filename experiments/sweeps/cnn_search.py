"""The MNIST CNN's Adam searched: learning rate and both betas, 64 trials with successive halving.

64 trials (quasi-random, search_seed 0), one seed each: learning rate log-uniform in [1e-4, 1e-2],
b1 uniform in [0.8, 0.95], b2 uniform in [0.99, 0.9999]; the article's recipe otherwise (10 epochs,
batch 200), with a tenth of the training images held out for validation. The trials differ only in
run-axis keys, so all 64 train as one compiled program; successive halving on the validation
accuracy every 2 epochs keeps the better half (64 -> 32 -> 16 -> 8 -> 4 train all 10 epochs).
Sized for an accelerator (make device-check runs it: the goal is 60 s on one H200); on a 2-core
CPU it takes hours.

Run:     make sweep SWEEP=experiments/sweeps/cnn_search.py WORKDIR=runs/sweeps/cnn_search
         make report DIR=runs/sweeps/cnn_search METRIC=test/accuracy
"""


def get_sweep():
  return {
      "config": "experiments/cnn_mnist.py",
      "overrides": {"progress": False, "dataset.validation_fraction": 0.1, "checkpoint_every_epochs": 10},
      "space": {"optimizer.learning_rate": ("log_uniform", 1e-4, 1e-2),
                "optimizer.kwargs.b1": ("uniform", 0.8, 0.95),
                "optimizer.kwargs.b2": ("uniform", 0.99, 0.9999)},
      "trials": 64,
      "seeds": [0],
      "halving": {"metric": "validation/accuracy", "every_epochs": 2, "keep": 0.5},
  }
