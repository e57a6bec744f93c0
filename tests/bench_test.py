"""make bench: cases run in their own processes, a failing one is recorded, the table reads bench.json."""

import json

import pytest

from benchmarks import bench


def test_a_case_reports_its_figures_and_peak_memory():
  result = bench.run_case("house_mlp", 1)
  assert result["jax_seconds"] > 0 and result["numpy_seconds"] > 0 and result["peak_rss_mib"] > 0


@pytest.mark.slow
def test_every_case_runs_in_a_subprocess_and_failures_do_not_stop_the_rest(tmp_path, monkeypatch):
  monkeypatch.setitem(bench.CASES, "broken", lambda repeats: 1 / 0)
  out = tmp_path / "bench.json"
  results = bench.run_cases(["broken", "house_mlp"], 1, out=str(out), info={"device_kind": "cpu", "backend": "cpu",
                                                                          "cpu_count": 2, "jax": "x"})
  assert "error" in results["broken"] and "jax_seconds" in results["house_mlp"]
  assert json.loads(out.read_text())["house_mlp"] == results["house_mlp"]  # written as it goes


def test_the_table_names_what_ran_and_what_failed():
  table = bench.summary_table({
      "machine": {"device_kind": "cpu", "backend": "cpu", "cpu_count": 2, "jax": "0.10.2"},
      "house_mlp": {"jax_seconds": 0.005, "numpy_seconds": 0.034, "compile_seconds": 0.2, "peak_rss_mib": 450},
      "fnn_epoch_k1": {"epoch_ms": 4.0, "steps_per_epoch": 14, "steps_per_dispatch": 1, "data_on_device": "true"},
      "fnn_epoch_k0": {"epoch_ms": 1.0, "steps_per_epoch": 14, "steps_per_dispatch": 10, "data_on_device": "true"},
      "torch_cnn": {"skipped": "torch is not installed"},
      "cnn_eval_runs": {"images_per_second": 40000.0, "runs": 4, "peak_rss_mib": 470},
      **{f"gru_custom_vjp_b{b}": {"compared": "scan", "compared_sequences_per_second": 1000.0 * b,
                                  "custom_vjp_sequences_per_second": 1500.0 * b, "ratio": 1.5} for b in (32, 256)},
      "cnn_loop": {"error": "timed out after 60 s"}})
  assert "| house MLP, 2000 epochs" in table and "5.0 / 34.0 ms" in table
  assert "| fnn epoch (14 steps): 1 / 10 steps per dispatch | 4.00 / 1.00 ms = 4.00x |" in table
  assert ("| gru training, recurrence scan / custom_vjp (alternating), batch 32; 256 | 32000 / 48000 seq/s = 1.50x; "
          "256000 / 384000 seq/s = 1.50x |") in table
  assert "| CNN evaluation of 4 runs of one program, batch 1000 | 40000 img/s over all runs |" in table
  assert "PyTorch" not in table and "cnn_loop (timed out after 60 s)" in table


def test_accelerator_and_cpu_only_cases_are_chosen_by_backend():
  assert "cnn_epoch_k100" not in bench.default_cases("cpu") and "cnn_train_microbatch_25" in bench.default_cases("cpu")
  assert "cnn_epoch_k100" in bench.default_cases("gpu") and "cnn_train_microbatch_25" not in bench.default_cases("gpu")


def test_every_named_case_list_names_cases_that_exist():
  for names in (bench.CPU_ONLY, bench.ACCELERATOR_ONLY, bench.DEVICE_CHECK):
    assert set(names) <= set(bench.CASES)


@pytest.mark.slow
def test_the_recurrence_pair_times_both_on_the_same_machine():
  result = bench.run_case("simple_custom_vjp_b32", 1)
  assert result["compared"] == "scan" and result["compared_sequences_per_second"] > 0
  assert result["ratio"] == pytest.approx(result["custom_vjp_sequences_per_second"]
                                          / result["compared_sequences_per_second"])


@pytest.mark.slow
def test_the_benchmark_only_recurrences_train_through_the_public_program_builder():
  result = bench.run_case("lstm_fused_b32", 1)  # its model named as benchmarks/recurrences.py:BenchSequenceRegressor
  assert result["sequences_per_second"] > 0
