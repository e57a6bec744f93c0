"""The article's from-scratch MLP: house price from size and age, on the article's 20 houses.

2 inputs -> 4 sigmoid units -> 1 linear output; weights standard normal and
biases ones; full-batch gradient descent at lr 0.01 for 2000 epochs on half
the mean squared error of standardized data (the article's update rule).

Run:     make train-mlp
         (= python -m nn_jax train --config experiments/house_mlp.py --workdir runs/house_mlp)
Expect:  "Predicted price for 110 m², 7 years: 211.1 t€" and "... 85 m², 12 years: 172.3 t€",
         final MSE 0.073 (seed 0); over seeds 0..4 213.2 ± 5.1 and 173.2 ± 1.2 t€, where the
         article's program gives 205.6-221.9 and 160.8-177.8 t€. Under 3 s on the 2-core CPU.
"""

from nn_jax.config import base_config


def get_config():
  config = base_config()
  config.name = "house_mlp"
  config.model.update({"name": "mlp", "hidden_units": (4,), "activation": "sigmoid", "initializer": "article",
                      "initializer_scale": 1.0})
  config.dataset.name = "house_prices"
  config.loss = "half_mse"
  config.optimizer.update({"name": "sgd", "learning_rate": 0.01})
  config.num_epochs = 2000
  config.batch_size = 0
  config.log_every_epochs = 100
  config.checkpoint_every_epochs = 500
  config.predict_examples = ((110.0, 7.0), (85.0, 12.0))
  return config
