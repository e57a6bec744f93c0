import sys

from nn_jax.training import interrupt

interrupt.catch_early()  # before the heavy imports: a signal during start-up still stops a run cleanly

from nn_jax.cli import main  # noqa: E402

sys.exit(main())
