"""The article's MNIST CNN: Conv32-pool-Conv64-pool-Dense128-Dense10, Adam 1e-3, batch 200, 10 epochs.

Run:     make train-cnn
         (= python -m nn_jax train --config experiments/cnn_mnist.py --workdir runs/cnn_mnist)
Expect:  test accuracy about 99% after 10 epochs (seeds 0, 1, 2: 99.01 / 99.21 / 98.95%;
         99.0% first reached at epoch 5-6, 55-67 s after launch), 1 min 41-46 s of wall time
         on the 2-core CPU; docs/results.md has the per-seed table.
Smoke:   --config.num_epochs=1 --config.dataset.train_examples=400 --config.dataset.test_examples=500

Variant `cnn_mnist.py:bn_dropout`: the regularized CNN of Keras' MNIST example: BatchNorm between each
convolution and its relu, dropout 0.25 after the second pool and 0.5 after Dense 128; same recipe.
Run:     python -m nn_jax train --config experiments/cnn_mnist.py:bn_dropout --workdir runs/cnn_bn_dropout
Expect:  test accuracy 99.17 / 99.11 / 99.06% (seeds 0, 1, 2; docs/results.md); BatchNorm sits between
         conv and pool, so XLA's convolution runs on every backend: 8-11 minutes on the 2-core CPU.
"""

from nn_jax.config import base_config

VARIANTS = ("", "bn_dropout")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ValueError(f"variant {variant!r} is not one of {', '.join(v for v in VARIANTS if v)}: "
                     f"use cnn_mnist.py or cnn_mnist.py:bn_dropout")
  config = base_config()
  config.name = "cnn_mnist" + (f"_{variant}" if variant else "")
  config.model.update({"name": "cnn", "num_classes": 10,
                       "conv_impl": "auto",  # auto: fastest per backend (nn_jax/training/auto.py)
                       "pool": "auto",  # or first_max: a scatter-free gradient (nn_jax/models/pooling.py)
                       "batch_norm": variant == "bn_dropout",
                       "conv_dropout": 0.25 if variant == "bn_dropout" else 0.0,
                       "dense_dropout": 0.5 if variant == "bn_dropout" else 0.0})
  config.dataset.update({
      "name": "mnist",
      "data_dir": "",  # "": $TFDS_DATA_DIR, else ~/tensorflow_datasets
      "manual_dir": "",  # "": DATA_DIR/downloads/manual; where the four official .gz files may lie
      "mirror_url": "https://storage.googleapis.com/cvdf-datasets/mnist/",  # "": never download
      "train_examples": 0,  # > 0: keep only the first N (quick runs)
      "test_examples": 0,
      "cache_dir": "",  # decoded arrays: "" = $NN_JAX_CACHE, else ~/.cache/nn_jax; "none": no cache
  })
  config.loss = "softmax_cross_entropy"
  config.optimizer.update({"name": "adam", "learning_rate": 1e-3})
  config.num_epochs = 10
  config.batch_size = 200
  config.eval_batch_size = 1000
  config.log_every_epochs = 1
  config.checkpoint_every_epochs = 1
  config.checkpoint_best_metric = "test/accuracy"
  config.target_metric = "test/accuracy"  # summary.json records the time from launch to 99.0%
  config.target_value = 0.99
  return config
