"""Search spaces: distributions drawn reproducibly, bad spaces refused in one line before anything runs."""

import math

import numpy as np
import pytest
from conftest import run_cli

from nn_jax import cli
from nn_jax.ablations import search, slurm, sweep  # noqa: F401  (slurm: submitit imported before a test captures
                                                   # its output; imported inside one, it breaks pytest's capture)
from nn_jax.common.errors import UserError

SPACE = {"optimizer.learning_rate": ("log_uniform", 1e-4, 1e-1), "model.initializer_scale": ("uniform", 0.5, 2.0),
         "model.hidden_units": ("choice", [(2,), (4,), (8,)]), "num_epochs": ("int_uniform", 10, 12)}


@pytest.mark.parametrize("sampler", search.SAMPLERS)
def test_draws_are_reproducible_from_the_search_seed_and_stay_in_their_ranges(sampler):
  points = search.sample(SPACE, 64, sampler, seed=3)
  assert points == search.sample(SPACE, 64, sampler, seed=3)
  assert points != search.sample(SPACE, 64, sampler, seed=4)
  rates = np.array([p["optimizer.learning_rate"] for p in points])
  assert 1e-4 <= rates.min() and rates.max() <= 1e-1
  assert all(float(f"{r:.4g}") == r for r in rates)  # 4 significant digits: the folder name is the value
  # log-uniform: about as many below the geometric middle (1e-2.5) as above it
  assert 20 <= (np.log10(rates) < -2.5).sum() <= 44
  assert {p["model.hidden_units"] for p in points} == {(2,), (4,), (8,)}
  assert {p["num_epochs"] for p in points} == {10, 11, 12}
  assert all(0.5 <= p["model.initializer_scale"] < 2.0 for p in points)


def test_quasi_random_covers_the_space_more_evenly_than_random():
  def largest_gap(sampler):  # on one axis: the widest interval no point falls into
    u = np.sort(search.unit_points(16, 1, sampler, seed=0)[:, 0])
    return np.diff(np.concatenate([[0.0], u, [1.0]])).max()
  assert largest_gap("quasi_random") < 2 / 16 < largest_gap("random")


@pytest.mark.parametrize("distribution, message", [
    (("uniform", 1.0, 1.0), "needs low < high"),
    (("log_uniform", 0.0, 1.0), "needs 0 < low"),
    (("log_uniform", -1.0, 1.0), "needs 0 < low"),
    (("normal", 0.0, 1.0), "'normal' is not a distribution"),
    (("choice", []), "non-empty list"),
    (("int_uniform", 1.5, 4), "two ints"),
    (("uniform", 0.0), "two numbers"),
    ((0.1, 0.2), "0.1 is not a distribution"),
])
def test_bad_distributions_are_one_line_naming_the_key(distribution, message):
  with pytest.raises(UserError, match=message) as raised:
    search.check_space({"optimizer.learning_rate": distribution}, "sweep s.py")
  assert "optimizer.learning_rate" in str(raised.value) and "\n" not in str(raised.value)


SEARCH = '''
def get_sweep():
  return {{"config": "experiments/house_mlp.py", "overrides": {{"num_epochs": 20, "progress": False}},
          "seeds": [0], {extra}}}
'''


@pytest.mark.parametrize("extra, message", [
    ('"space": {"optimizer.learning_rate": ("log_uniform", 0, 1)}, "trials": 4', "needs 0 < low"),
    ('"space": {"model.no_such_field": ("uniform", 0, 1)}, "trials": 4', "no_such_field"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}', "needs trials"),
    ('"trials": 4', "trials needs a space"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, "sampler": "sobol"', "sampler 'sobol'"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, "axes": {"optimizer.learning_rate": [1]}',
     "both an axis and a searched key"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, '
     '"halving": {"metric": "validation/loss", "every_epochs": 5, "keep": 0.5}', "no validation split"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, '
     '"halving": {"metric": "train/loss", "every_epochs": 20, "keep": 0.5}', "leaves no rung"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, '
     '"halving": {"metric": "train/loss", "every_epochs": 5, "keep": 1.5}', "keep must be a fraction"),
    ('"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, '
     '"halving": {"metric": "train/loss", "every": 5, "keep": 0.5}', "halving has unknown every"),
])
def test_a_bad_search_is_one_line_and_exit_2_before_anything_runs(tmp_path, extra, message):
  sweep_file = tmp_path / "s.py"
  sweep_file.write_text(SEARCH.format(extra=extra))
  result = run_cli(["sweep", "--sweep", sweep_file, "--workdir", tmp_path / "out"])
  assert result.returncode == 2 and message in result.stderr, result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_each_trial_is_a_run_directory_named_by_its_values_and_axes_take_the_same_trials(tmp_path):
  sweep_file = tmp_path / "s.py"
  sweep_file.write_text(SEARCH.format(extra='"axes": {"model.activation": ["relu", "sigmoid"]}, "trials": 3, '
                                            '"space": {"optimizer.learning_rate": ("log_uniform", 0.001, 0.1)}'))
  points = sweep.expand(sweep.load_sweep(str(sweep_file)))
  assert len(points) == 6 and [p.trial for p in points] == [0, 1, 2, 0, 1, 2]
  assert points[4].bracket == "activation-sigmoid"
  rate = points[4].values["optimizer.learning_rate"]
  assert points[4].name == f"activation-sigmoid_trial-1_learning_rate-{rate}"
  assert points[1].values["optimizer.learning_rate"] == rate  # the same draws within each grid point
  assert points[4].configs[0].optimizer.learning_rate == rate and not math.isnan(rate)


def test_halving_on_a_cluster_launcher_is_refused_before_anything_is_written(tmp_path, capsys):
  sweep_file = tmp_path / "s.py"
  sweep_file.write_text(SEARCH.format(extra='"space": {"optimizer.learning_rate": ("uniform", 0.1, 1)}, "trials": 4, '
                                            '"halving": {"metric": "train/loss", "every_epochs": 5, "keep": 0.5}'))
  code = cli.main(["sweep", "--sweep", str(sweep_file), "--workdir", str(tmp_path / "out"), "--launcher",
                   "submitit_local"])
  assert code == 2 and "use --launcher local" in capsys.readouterr().err and not (tmp_path / "out").exists()
