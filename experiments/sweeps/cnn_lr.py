"""How sensitive is the MNIST CNN to Adam's learning rate? The article's recipe, in full.

Learning rate {3e-4, 1e-3, 3e-3} x 5 seeds: 10 epochs on all 60,000 training images, batch 200,
the 10,000 test images evaluated. The 15 runs differ only in the seed and the learning rate, so
they train as one compiled program (README, "Sweeps and reports").

Run:     make sweep SWEEP=experiments/sweeps/cnn_lr.py WORKDIR=runs/sweeps/cnn_lr
         make report DIR=runs/sweeps/cnn_lr OUT=experiments/results/cnn_lr
Result:  experiments/results/cnn_lr/ (test accuracy per epoch and final; 2-core CPU, docs/results.md).
"""


def get_sweep():
  return {
      "config": "experiments/cnn_mnist.py",
      "overrides": {"progress": False},
      "axes": {"optimizer.learning_rate": [3e-4, 1e-3, 3e-3]},
      "seeds": [0, 1, 2, 3, 4],
  }
