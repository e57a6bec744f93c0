"""The training core: one trainer for every model (trainer.py) builds a program (program.py) of a jitted
train step (step.py) in an epoch loop (loop.py), with evaluation, stopping, the task's losses and metrics,
optax optimizers, per-backend choices and the process's guards (interrupts, the watchdog)."""
