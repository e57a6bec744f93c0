"""nn_jax: the classic neural networks as pure Flax modules, one jitted Optax trainer."""

import time

__version__ = "0.1.0"

# When the package was first imported: "from launch" for time-to-target figures.
LAUNCH_TIME = time.time()
