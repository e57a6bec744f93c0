"""Runs the nn_jax CLI with tfds.testing.mock_data serving MNIST: random, deterministic records, no files."""

import sys

import tensorflow_datasets as tfds

if __name__ == "__main__":
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    from nn_jax.cli import main
    sys.exit(main(sys.argv[1:]))
