import sys

from nn_jax.cli import main

sys.exit(main())
