"""Search spaces: hyperparameters drawn from distributions, by a random or a quasi-random sequence.

A sweep file's `space` maps dotted config keys to distributions, written as tuples:

  ("uniform", low, high)       a float in [low, high)
  ("log_uniform", low, high)   a float whose log is uniform in [log low, log high); 0 < low
  ("int_uniform", low, high)   an int in low..high, both included
  ("choice", [value, ...])     one of the values, each equally likely

`trials` points are drawn with `sampler` "quasi_random" (a scrambled Halton sequence, which covers the
space more evenly than independent draws: the Deep Learning Tuning Playbook's recommendation) or
"random" (independent uniform draws, Bergstra and Bengio), both from `search_seed`, so a search is
the same points on every machine. Floats are rounded to 4 significant digits, so a trial's folder
name states the value it trained with exactly.
"""

import math

import numpy as np

from nn_jax.common.errors import UserError

SAMPLERS = ("quasi_random", "random")
DISTRIBUTIONS = {"uniform": "low, high", "log_uniform": "low, high (0 < low)", "int_uniform": "low, high",
                 "choice": "[value, ...]"}


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_space(space: dict, where: str) -> None:
  """UserError naming the first malformed distribution of `space` ({dotted key: tuple})."""
  for key, distribution in space.items():
    example = 'write e.g. ("log_uniform", 1e-4, 1e-1) or ("choice", [16, 32])'
    if not isinstance(distribution, (tuple, list)) or not distribution or distribution[0] not in DISTRIBUTIONS:
      name = distribution[0] if isinstance(distribution, (tuple, list)) and distribution else distribution
      raise UserError(f"{where}: space {key!r}: {name!r} is not a distribution ({', '.join(DISTRIBUTIONS)}); "
                      f"{example}")
    name, *arguments = distribution
    if name == "choice":
      if len(arguments) != 1 or not isinstance(arguments[0], (list, tuple)) or not arguments[0]:
        raise UserError(f"{where}: space {key!r}: choice needs a non-empty list of values, e.g. "
                        f'("choice", [16, 32, 64]), got {distribution!r}')
      continue
    if len(arguments) != 2 or not all(_number(a) for a in arguments):
      raise UserError(f"{where}: space {key!r}: {name} takes {DISTRIBUTIONS[name]}, two numbers, got {distribution!r}")
    low, high = arguments
    if not low < high:
      raise UserError(f"{where}: space {key!r}: {name} needs low < high, got {low} and {high}")
    if name == "log_uniform" and low <= 0:
      raise UserError(f"{where}: space {key!r}: log_uniform needs 0 < low (a log of {low} does not exist); use "
                      f"uniform, or a positive low")
    if name == "int_uniform" and not all(isinstance(a, int) for a in arguments):
      raise UserError(f"{where}: space {key!r}: int_uniform takes two ints, got {distribution!r}")


def unit_points(trials: int, dimensions: int, sampler: str, seed: int) -> np.ndarray:
  """(trials, dimensions) points in [0, 1): a scrambled Halton sequence or independent uniform draws."""
  if sampler == "random":
    return np.random.default_rng(seed).random((trials, dimensions))
  from scipy.stats import qmc  # SciPy loads when a quasi-random search is drawn
  return qmc.Halton(d=dimensions, scramble=True, seed=seed).random(trials)


def _value(distribution, u: float):
  name, *arguments = distribution
  if name == "choice":
    values = arguments[0]
    return values[min(int(u * len(values)), len(values) - 1)]
  low, high = arguments
  if name == "int_uniform":
    return min(low + int(u * (high - low + 1)), high)
  if name == "uniform":
    value = low + u * (high - low)
  else:
    value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
  return float(f"{value:.4g}")


def sample(space: dict, trials: int, sampler: str, seed: int) -> list[dict]:
  """`trials` points of `space`, each {dotted key: value}, in the sampler's order."""
  keys = list(space)
  points = unit_points(trials, len(keys), sampler, seed)
  return [{key: _value(space[key], float(u)) for key, u in zip(keys, row)} for row in points]


def log_scale(space: dict, key: str) -> bool:
  """Whether `key`'s values are drawn log-uniformly (a report plots them on a log axis)."""
  return key in space and space[key][0] == "log_uniform"
