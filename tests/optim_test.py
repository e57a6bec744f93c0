"""Optimizers and schedules by name from optax."""

import jax
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from nn_jax.common.errors import UserError
from nn_jax.training import optim


def _optimizer(name, learning_rate=0.1, **kwargs):
  return ConfigDict({"name": name, "learning_rate": learning_rate, "kwargs": ConfigDict(kwargs)})


def _schedule(name="", **kwargs):
  return ConfigDict({"name": name, "kwargs": ConfigDict(kwargs)})


def test_any_optax_optimizer_and_schedule_is_offered():
  assert {"sgd", "adam", "adamw", "lamb", "rmsprop", "lion"} <= set(optim.optimizer_names())
  assert {"warmup_cosine_decay_schedule", "cosine_decay_schedule", "linear_schedule"} <= set(optim.schedule_names())


@pytest.mark.parametrize("name,kwargs", [("sgd", {"momentum": 0.9, "nesterov": True}), ("adam", {"b1": 0.8})])
def test_the_optimizer_is_optax_s_own_with_its_numbers_as_arrays_in_the_state(name, kwargs):
  tx = optim.make_optimizer(_optimizer(name, **kwargs))
  reference = getattr(optax, name)(0.1, **kwargs)
  params = {"w": np.linspace(-1, 1, 3, dtype=np.float32)}
  state, reference_state = tx.init(params), reference.init(params)
  assert jax.tree_util.tree_structure(state.inner_state) == jax.tree_util.tree_structure(reference_state)
  # The learning rate and float kwargs ride on the run axis; a flag (nesterov) stays part of the program.
  assert set(state.hyperparams) == {"learning_rate", *(k for k, v in kwargs.items() if isinstance(v, float))}
  for step in range(3):
    grads = {"w": np.float32(step + 1) * params["w"]}
    updates, state = tx.update(grads, state, params)
    expected, reference_state = reference.update(grads, reference_state, params)
    np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-6)


def test_a_restored_state_takes_the_config_s_hyperparameters():
  params = {"w": np.ones(3, np.float32)}
  restored = optim.make_optimizer(_optimizer("adam", 0.1, b1=0.8)).init(params)
  config = optim.make_optimizer(_optimizer("adam", 0.01, b1=0.7)).init(params)
  merged = optim.with_hyperparameters_of(restored, config)
  assert {k: float(v) for k, v in merged.hyperparams.items()} == pytest.approx({"learning_rate": 0.01, "b1": 0.7})
  assert merged.inner_state is restored.inner_state


def test_the_schedule_multiplies_the_learning_rate_and_its_length_defaults_to_the_run():
  schedule = _schedule("warmup_cosine_decay_schedule", init_value=0.0, peak_value=1.0, warmup_steps=10)
  tx = optim.make_optimizer(_optimizer("sgd", 0.5), schedule, total_steps=100)
  params = {"w": np.ones(1, np.float32)}
  state = tx.init(params)
  steps = []
  for _ in range(100):
    updates, state = tx.update({"w": np.ones(1, np.float32)}, state, params)
    steps.append(-float(updates["w"][0]))  # sgd: the update is -lr(t) * gradient
  assert steps[0] == 0.0 and steps[10] == pytest.approx(0.5) and steps[-1] < 0.01  # decayed over the 100 steps


def test_a_schedule_s_floats_it_computes_with_as_arrays_are_arrays_of_the_state():
  kwargs = {"init_value": 0.1, "peak_value": 1.0, "warmup_steps": 10, "end_value": 0.05}
  tx = optim.make_optimizer(_optimizer("sgd", 0.5), _schedule("warmup_cosine_decay_schedule", **kwargs), 100)
  params = {"w": np.ones(1, np.float32)}
  state = tx.init(params)
  # The schedule branches on peak_value in Python: a constant of the program, the others ride on the run axis.
  assert set(state.hyperparams) == {"learning_rate", "schedule_step", "schedule_init_value", "schedule_end_value"}
  reference = optax.warmup_cosine_decay_schedule(**kwargs, decay_steps=100)
  for step in range(30):
    updates, state = tx.update({"w": np.ones(1, np.float32)}, state, params)
    np.testing.assert_allclose(-updates["w"][0], 0.5 * reference(step), rtol=1e-6)


@pytest.mark.parametrize("optimizer,schedule,message", [
    (_optimizer("adamm"), _schedule(), "did you mean adam"),
    (_optimizer("adam", b3=1.0), _schedule(), "optax.adam takes no b3 (its parameters: b1, b2"),
    (_optimizer("adam", learning_rate=0.0), _schedule(), "learning_rate must be positive"),
    (_optimizer("adam"), _schedule("warmup_cosine"), "did you mean warmup_cosine_decay_schedule"),
    (_optimizer("adam"), _schedule("warmup_cosine_decay_schedule", init_value=0.0),
     "missing a required argument: 'peak_value'"),
])
def test_bad_names_and_arguments_are_refused_up_front(optimizer, schedule, message):
  with pytest.raises(UserError, match=message.replace("(", r"\(")):
    optim.validate(optimizer, schedule)
