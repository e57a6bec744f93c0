"""The article's from-scratch MLP: house price from size and age.

2 inputs -> 4 sigmoid units -> 1 linear output; weights standard normal and
biases ones; full-batch gradient descent at lr 0.01 for 2000 epochs on half
the mean squared error of standardized data (the article's update rule).

Run:     make train-mlp
         (= python -m nn_jax train --config experiments/house_mlp.py --workdir runs/house_mlp)
Expect:  see README.md "The house-price MLP" for the loss and the two predictions
         over seeds 0..4, measured on the 2-core CPU; about a second of training.
"""

from nn_jax.config import base_config


def get_config():
  config = base_config()
  config.name = "house_mlp"
  config.model.update({"name": "mlp", "hidden_units": (4,), "activation": "sigmoid", "initializer": "article"})
  config.dataset.name = "house_prices"
  config.loss = "half_mse"
  config.optimizer.update({"name": "sgd", "learning_rate": 0.01})
  config.num_epochs = 2000
  config.batch_size = 0
  config.log_every_epochs = 100
  config.checkpoint_every_epochs = 500
  config.predict_examples = ((110.0, 7.0), (85.0, 12.0))
  return config
