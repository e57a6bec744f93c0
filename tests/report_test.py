"""Reports: runs grouped into points by their config minus the seed, mean ± std, plots."""

import csv
import json
import pathlib

import pytest

from nn_jax.ablations import report
from nn_jax.common.errors import UserError
from nn_jax.workdir import records


def _fake_run(root: pathlib.Path, name: str, units: int, seed: int, rmse: float) -> None:
  workdir = root / name
  workdir.mkdir(parents=True)
  records.write_json(workdir / "config.json", {"seed": seed, "model": {"units": units}, "progress": False})
  records.write_json(workdir / "summary.json", {"final": {"test": {"rmse": rmse, "loss": rmse / 10}},
                                                "train_seconds": 1.0})
  log = records.MetricsLog(workdir)
  for epoch in (1, 2):
    log.write(epoch, "test", {"rmse": rmse + 2 - epoch, "loss": 1.0})
  log.close()


@pytest.fixture
def sweep(tmp_path):
  for units, base in ((16, 30.0), (64, 20.0)):
    for seed in (0, 1):
      _fake_run(tmp_path, f"units-{units}/seed_{seed}", units, seed, base + seed)
  return tmp_path


def test_points_are_the_varying_keys_with_mean_and_std_over_seeds(sweep):
  table = report.write_report(sweep)
  assert "| units=16 | 2 | 3.05 ± 0.071 | 30.5 ± 0.71 | 1 ± 0 |" in table
  assert "| units=64 | 2 |" in table
  with open(sweep / "runs.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 4 and {r["point"] for r in rows} == {"units=16", "units=64"}
  assert (sweep / "curves.png").stat().st_size > 1000 and (sweep / "final.png").stat().st_size > 1000
  assert "mean ± std over seeds" in (sweep / "results.md").read_text()


@pytest.mark.parametrize("metric,message", [("rmse", "must be SPLIT/NAME"), ("test/accuracy", "no run has it")])
def test_a_bad_metric_is_refused_before_anything_is_written(sweep, tmp_path, metric, message):
  out = tmp_path / "report_out"
  with pytest.raises(UserError, match=message):
    report.write_report(sweep, metric, out)
  assert not out.exists() and not (sweep / "runs.csv").exists()


@pytest.mark.parametrize("text,message", [('{"final": {"test"', "is damaged"), ('{"epochs": 3}', "has no final metrics")])
def test_a_damaged_summary_is_one_line_naming_it(sweep, text, message):
  (sweep / "units-16" / "seed_1" / "summary.json").write_text(text)
  with pytest.raises(UserError, match=f"units-16/seed_1/summary.json {message}"):
    report.write_report(sweep)
  assert not (sweep / "runs.csv").exists()


def test_no_runs_is_an_error(tmp_path):
  with pytest.raises(UserError, match="no finished runs"):
    report.write_report(tmp_path)


def test_points_are_ordered_by_value_not_text(tmp_path):
  for units in (2, 16, 4):
    _fake_run(tmp_path, f"u{units}", units, 0, 1.0)
  assert [label for label in report.group([report.load_run(w) for w in report.find_runs(tmp_path)])[1]] == [
      "units=2", "units=4", "units=16"]
  assert json.loads((tmp_path / "u2" / "config.json").read_text())["seed"] == 0
