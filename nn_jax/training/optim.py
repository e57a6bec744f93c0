"""Optimizers and learning-rate schedules by name, straight from optax (as big_vision's configs name them).

  config.optimizer.name / .learning_rate / .kwargs   optax.<name>(learning_rate, **kwargs), e.g. adamw
  config.schedule.name / .kwargs                     optax.<name>(**kwargs), e.g. warmup_cosine_decay_schedule

The schedule multiplies the learning rate: step t trains at `learning_rate * schedule(t)`, so a
schedule's values are relative (warmup_cosine_decay_schedule with init_value 0, peak_value 1).
A schedule parameter `decay_steps` or `transition_steps` left out is the run's number of steps.

The learning rate, every float keyword argument of the optimizer and those of the schedule that it
computes with as traced values are arrays in the optimizer's state (optax.inject_hyperparams), not
constants in the program: runs that differ only in them train as one compiled program
(the keys hparams.py marks RUN_AXIS), each with its own values.
"""

import difflib
import functools
import inspect

import ml_collections
import optax

from nn_jax.common.errors import UserError

_STEP_COUNTS = ("decay_steps", "transition_steps")


def _optax_function(name: str, kind: str, names: tuple[str, ...]):
  if name not in names:
    close = [n for n in names if name and name in n][:3] or difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"optax offers: {', '.join(names)}"
    raise UserError(f"config.{kind}.name {name!r} is not an optax {kind}; {hint}")
  return getattr(optax, name)


@functools.cache  # each config's validation asks; a sweep validates hundreds
def optimizer_names() -> tuple[str, ...]:
  """optax's optimizers: public functions that take a learning rate and build a transformation."""
  names = []
  for name in dir(optax):
    function = getattr(optax, name)
    if name.startswith("_") or inspect.isclass(function) or not callable(function) or name.startswith("scale"):
      continue
    try:
      if "learning_rate" in inspect.signature(function).parameters:
        names.append(name)
    except (TypeError, ValueError):
      continue
  return tuple(sorted(names))


def schedule_names() -> tuple[str, ...]:
  return tuple(sorted(name for name in dir(optax) if name.endswith("_schedule") and not name.startswith("scale")))


def _bind(function, kind: str, name: str, kwargs: dict, fixed: tuple = ()) -> None:
  """Raises UserError when `kwargs` do not fit `function`'s signature (a typo, a missing argument)."""
  signature = inspect.signature(function)
  unknown = sorted(set(kwargs) - set(signature.parameters))
  if unknown:
    raise UserError(f"config.{kind}.kwargs: optax.{name} takes no {', '.join(unknown)} "
                    f"(its parameters: {', '.join(p for p in signature.parameters if p not in fixed)})")
  try:
    signature.bind(**{p: None for p in fixed}, **kwargs)
  except TypeError as e:
    raise UserError(f"config.{kind}.kwargs do not fit optax.{name}: {e}") from e


def _schedule_kwargs(schedule_config, total_steps: int) -> dict:
  kwargs = dict(schedule_config.get("kwargs", {}))
  parameters = inspect.signature(getattr(optax, schedule_config.name)).parameters
  for name in _STEP_COUNTS:
    if name in parameters and name not in kwargs:
      kwargs[name] = total_steps
  return kwargs


def validate(optimizer_config, schedule_config) -> None:
  """Checks names and keyword arguments before any work starts; UserError naming the problem."""
  optimizer = _optax_function(optimizer_config.name, "optimizer", optimizer_names())
  if not 0 < optimizer_config.learning_rate < float("inf"):
    raise UserError(f"config.optimizer.learning_rate must be positive and finite, got "
                    f"{optimizer_config.learning_rate}")
  _bind(optimizer, "optimizer", optimizer_config.name, dict(optimizer_config.get("kwargs", {})), ("learning_rate",))
  if schedule_config.get("name"):
    schedule = _optax_function(schedule_config.name, "schedule", schedule_names())
    _bind(schedule, "schedule", schedule_config.name, _schedule_kwargs(schedule_config, 1))
  _check_one_step(optimizer_config, schedule_config)


def _check_one_step(optimizer_config, schedule_config) -> None:
  """Builds the optimizer and traces one update on abstract parameters (nothing is computed), so that a
  keyword argument of the wrong type (b1='abc') is refused now rather than in the first train step."""
  import jax  # the trace alone needs it
  import jax.numpy as jnp

  def one_step(params):  # a long run: the schedule's step counts left out fit any warmup given
    optimizer = make_optimizer(optimizer_config, schedule_config, total_steps=2**30)
    updates, _ = optimizer.update(params, optimizer.init(params), params)
    return updates

  try:
    jax.eval_shape(one_step, {"w": jax.ShapeDtypeStruct((2, 2), jnp.float32)})
  except Exception as e:  # optax's own error, whatever its kind: the config is what is wrong
    groups = "config.optimizer.kwargs" + (" or config.schedule.kwargs" if schedule_config.get("name") else "")
    raise UserError(f"{groups} do not work with optax.{optimizer_config.name}: {type(e).__name__}: "
                    f"{str(e).splitlines()[0][:160] if str(e) else 'no message'}; give numbers where numbers "
                    f"are expected") from e


def on_run_axis(value) -> bool:
  """Whether an optimizer keyword argument is a number the program takes as an array (a float)."""
  return isinstance(value, float)


_SCHEDULE_PREFIX = "schedule_"  # a schedule's kwargs among the injected hyperparameters
_traces_with_array = {}  # (schedule, kwarg, its other kwargs) -> bool: a sweep asks once per config


def schedule_kwarg_on_run_axis(schedule_config, kwarg: str, value) -> bool:
  """Whether a schedule's keyword argument is a number the program takes as an array: a float that
  the schedule computes with as a traced value. Some schedules branch on a value in Python
  (warmup_cosine_decay_schedule on peak_value, the one-cycle schedules on their fractions): such a
  value shapes the program, so runs that differ in it are separate programs."""
  if not isinstance(value, float):
    return False
  kwargs = _schedule_kwargs(schedule_config, 2**30)
  key = (schedule_config.name, kwarg, repr(sorted(kwargs.items())))
  if key not in _traces_with_array:
    import jax  # the trace alone needs it
    import jax.numpy as jnp
    schedule = getattr(optax, schedule_config.name)
    try:
      jax.eval_shape(lambda array: schedule(**{**kwargs, kwarg: array})(jnp.int32(1)), jnp.float32(value))
      _traces_with_array[key] = True
    except Exception:  # a Python branch on the value, whatever the error's kind
      _traces_with_array[key] = False
  return _traces_with_array[key]


def make_optimizer(optimizer_config: ml_collections.ConfigDict, schedule_config=None,
                   total_steps: int = 1) -> optax.GradientTransformation:
  """optax.<optimizer.name>(learning_rate [x schedule], **optimizer.kwargs), the learning rate and the
  float kwargs injected as arrays of the optimizer state; the schedule's value is computed each step
  from the step count and its kwargs, those on the run axis arrays of the state too."""
  function = getattr(optax, optimizer_config.name)
  kwargs = dict(optimizer_config.get("kwargs", {}))
  injected = {"learning_rate": float(optimizer_config.learning_rate),
              **{name: value for name, value in kwargs.items() if on_run_axis(value)}}
  fixed = {name: value for name, value in kwargs.items() if name not in injected}
  schedule, schedule_fixed = None, {}
  if schedule_config is not None and schedule_config.get("name"):
    schedule = getattr(optax, schedule_config.name)
    for name, value in _schedule_kwargs(schedule_config, total_steps).items():
      if schedule_kwarg_on_run_axis(schedule_config, name, value):
        injected[_SCHEDULE_PREFIX + name] = value
      else:
        schedule_fixed[name] = value
    injected["schedule_step"] = lambda count: count  # evaluated at each update's step count

  def optimizer(**hyperparameters):
    learning_rate = hyperparameters.pop("learning_rate")
    if schedule is not None:
      step = hyperparameters.pop("schedule_step")
      arrays = {name.removeprefix(_SCHEDULE_PREFIX): hyperparameters.pop(name)
                for name in list(hyperparameters) if name.startswith(_SCHEDULE_PREFIX)}
      learning_rate = learning_rate * schedule(**schedule_fixed, **arrays)(step)
    return function(learning_rate, **hyperparameters, **fixed)

  optimizer.__signature__ = inspect.Signature(
      [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in injected])
  return optax.inject_hyperparams(optimizer)(**injected)


def with_hyperparameters_of(opt_state, config_opt_state):
  """`opt_state` (restored from a checkpoint) with the hyperparameters of `config_opt_state` (built
  from the config), so a run resumed with allow_config_change trains with the config's values."""
  return opt_state._replace(hyperparams={**opt_state.hyperparams, **config_opt_state.hyperparams})
