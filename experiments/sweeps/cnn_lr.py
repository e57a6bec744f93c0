"""How sensitive is the MNIST CNN to Adam's learning rate? Sized to finish well within an hour here.

Learning rate {3e-4, 1e-3, 3e-3} x 2 seeds. Cut to fit the 2-core CPU: 3 epochs instead
of 10 on the first 30,000 training images; the whole 10,000-image test set is evaluated.

Run:     make sweep SWEEP=experiments/sweeps/cnn_lr.py WORKDIR=runs/sweeps/cnn_lr
         make report DIR=runs/sweeps/cnn_lr OUT=experiments/results/cnn_lr
Result:  experiments/results/cnn_lr/ (test accuracy per epoch and final; 2-core CPU).
"""


def get_sweep():
  return {
      "config": "experiments/cnn_mnist.py",
      "overrides": {"num_epochs": 3, "dataset.train_examples": 30000, "progress": False},
      "axes": {"optimizer.learning_rate": [3e-4, 1e-3, 3e-3]},
      "seeds": [0, 1],
      # On a CPU, vmapping the CNN over seeds saves nothing (the step is compute-bound), and
      # one run at a time keeps the memory small.
      "vectorize_seeds": False,
  }
