"""`make device-check`: the project end to end on this machine's accelerator (or its CPU), in minutes.

  python -m tools.device_check [--out DIR] [--budget SECONDS] [--skip STAGE ...]

Stages, most important first, each a subprocess with a time limit, so that a
failure or a hang in one is recorded and the next still runs:

  inventory    devices, versions, nvidia-smi
  cnn_seed0    `make train-cnn`'s command on the real MNIST, seed 0, from a cold start
  cnn_repeat   the same run again (warm data and compilation caches): did it end bit-identical?
  cnn_nondet   the same with --config.deterministic=False: the determinism flag's cost
  cnn_first_max  the same with --config.model.pool=first_max (deterministic ops on): the max-pool's
               gradient as a select rather than XLA's select_and_scatter, against cnn_seed0 and cnn_nondet
  fast_tests   the fast test tier (pytest -m "not slow") on this backend
  cnn_search   `make sweep SWEEP=experiments/sweeps/cnn_search.py`: 64 trials of Adam's learning rate and
               betas as one program, successive halving every 2 epochs, timed from launch (goal: 60 s)
  bench        make bench's rows for this backend, PyTorch's eager CNN beside them
  cnn_lr_sweep `make sweep SWEEP=experiments/sweeps/cnn_lr.py`: 15 full CNN runs (learning rate x seed) as
               one program, timed from launch
  cnn_seeds    seeds 1 and 2
--budget (default 450 s) is all the stages' time together: a stage starts with what is left, and once
it is spent the remaining stages are recorded as skipped, in this order.
Results go to DIR/device_check.json (everything) and DIR/device_check.md (a
summary), rewritten after each stage. This process never imports JAX, so the
stages have the accelerator to themselves.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
STAGES = ("inventory", "cnn_seed0", "cnn_repeat", "cnn_nondet", "cnn_first_max", "fast_tests", "cnn_search", "bench",
          "cnn_lr_sweep", "cnn_seeds")
INVENTORY = """
import json, platform, jax, flax, optax, orbax.checkpoint as ocp
devices = jax.devices()
stats = devices[0].memory_stats() or {}
print(json.dumps({"python": platform.python_version(), "backend": jax.default_backend(),
                  "devices": [str(d) for d in devices], "device_kind": devices[0].device_kind,
                  "memory_gib": round(stats.get("bytes_limit", 0) / 2**30, 1),
                  "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                               "orbax_checkpoint": ocp.__version__}}))
"""


class Check:
  def __init__(self, out: pathlib.Path, budget: float):
    self.out = out
    self.deadline = time.monotonic() + budget
    self.results = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "stages": {}}
    self.train_args = []
    out.mkdir(parents=True, exist_ok=True)

  def left(self) -> float:
    return self.deadline - time.monotonic()

  def run(self, args, limit: float, env=None) -> dict:
    """Runs a command with at most `limit` seconds (and no more than the budget left)."""
    limit = max(1.0, min(limit, self.left()))
    start = time.monotonic()
    try:
      done = subprocess.run(args, capture_output=True, text=True, timeout=limit, cwd=ROOT,
                            env={**os.environ, **(env or {})})
      return {"returncode": done.returncode, "seconds": round(time.monotonic() - start, 2),
              "stdout": done.stdout, "stderr": done.stderr}
    except subprocess.TimeoutExpired as e:
      return {"returncode": None, "seconds": round(time.monotonic() - start, 2), "timed_out": limit,
              "stdout": (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""),
              "stderr": (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")}

  def record(self, stage: str, result: dict) -> None:
    self.results["stages"][stage] = result
    (self.out / "device_check.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
    (self.out / "device_check.md").write_text(markdown(self.results))
    print(f"[{stage}] {_headline(stage, result)}", flush=True)


def _tail(text: str, lines: int = 15) -> str:
  return "\n".join(text.strip().splitlines()[-lines:])


def train_cnn(check: Check, workdir: pathlib.Path, *overrides: str, limit: float = 120) -> dict:
  """The command `make train-cnn` runs, timed from its launch; its summary.json's figures."""
  overrides = (*overrides, *check.train_args)
  command = [sys.executable, "-m", "nn_jax", "train", "--config", "experiments/cnn_mnist.py", "--workdir",
             str(workdir), "--config.progress=False", *overrides]
  done = check.run(command, limit)
  result = {"command": " ".join(["python -m nn_jax train --config experiments/cnn_mnist.py"] + list(overrides)),
            "wall_from_launch_seconds": done["seconds"], "returncode": done["returncode"]}
  summary_path = workdir / "summary.json"
  if done["returncode"] == 0 and summary_path.is_file():
    summary = json.loads(summary_path.read_text())
    result.update(test_accuracy=summary["final"]["test"]["accuracy"], wall_seconds=summary["wall_seconds"],
                  compile_seconds=summary["compile_seconds"], train_seconds=summary["train_seconds"],
                  train_images_per_second=summary["train_examples_per_second"],
                  time_to_target=summary.get("time_to_target"), params_digest=summary.get("params_digest"),
                  resolved=summary.get("resolved"), device_kind=summary.get("device_kind"))
    result["metrics_jsonl"] = (workdir / "metrics.jsonl").read_text()
  else:
    result["output"] = _tail(done["stdout"] + done["stderr"], 30)
  return result


def cnn_sweep(check: Check, sweep_file: str, root: pathlib.Path, limit: float = 180) -> dict:
  """A shipped CNN sweep or search, timed from its launch; each run's test accuracy."""
  done = check.run([sys.executable, "-m", "nn_jax", "sweep", "--sweep", sweep_file, "--workdir", str(root)], limit)
  result = {"command": f"python -m nn_jax sweep --sweep {sweep_file}",
            "wall_from_launch_seconds": done["seconds"], "returncode": done["returncode"],
            "output": _tail(done["stdout"] + done["stderr"], 8)}
  summaries = {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))}
  if summaries:
    result["test_accuracy"] = {run: s["final"]["test"]["accuracy"] for run, s in summaries.items()}
    first = next(iter(summaries.values()))
    result.update(runs_in_program=first["runs_in_program"], phases=first["phases"])
  return result


def bench(check: Check, limit: float) -> dict:
  from benchmarks import bench as bench_lib  # its case list; importing it does not import JAX
  out = check.out / "bench.json"
  done = check.run([sys.executable, "-m", "benchmarks.bench", "--repeats", "5", "--case-timeout", "60",
                    "--out", str(out), "--only", *bench_lib.DEVICE_CHECK], limit)
  result = {"returncode": done["returncode"], "seconds": done["seconds"], "output": _tail(done["stdout"], 60)}
  if out.is_file():
    result["bench"] = json.loads(out.read_text())
  deterministic = check.run([sys.executable, "-m", "benchmarks.bench", "--case", "cnn_train", "--repeats", "5"],
                            min(120, check.left()), env={"XLA_FLAGS": "--xla_gpu_deterministic_ops=true"})
  if deterministic["returncode"] == 0:
    result["cnn_train_deterministic"] = json.loads(deterministic["stdout"].strip().splitlines()[-1])
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="device_check", help="where device_check.json, .md and bench.json go")
  parser.add_argument("--runs", default="runs/device_check", help="the CNN runs' directories")
  parser.add_argument("--budget", type=float, default=450.0, help="seconds for all stages together")
  parser.add_argument("--skip", nargs="*", default=[], choices=STAGES)
  parser.add_argument("--train-args", default="", help="extra --config.KEY=VALUE for every CNN run (a CPU smoke run)")
  args = parser.parse_args()
  carried = ROOT / "data" / "tfds"
  if "TFDS_DATA_DIR" not in os.environ and (carried / "mnist" / "3.0.1" / "dataset_info.json").is_file():
    os.environ["TFDS_DATA_DIR"] = str(carried)  # as the Makefile sets it
  check = Check(pathlib.Path(args.out), args.budget)
  check.train_args = args.train_args.split()
  runs = pathlib.Path(args.runs).absolute()
  todo = [stage for stage in STAGES if stage not in args.skip]
  for stage in todo:
    if check.left() < 5:
      check.record(stage, {"skipped": "the time budget was spent"})
      continue
    if stage == "inventory":
      done = check.run([sys.executable, "-c", INVENTORY], 60)
      result = json.loads(done["stdout"].strip().splitlines()[-1]) if done["returncode"] == 0 else {
          "error": _tail(done["stderr"])}
      smi = check.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                       "--format=csv,noheader"], 20) if _has("nvidia-smi") else None
      if smi and smi["returncode"] == 0:
        result["nvidia_smi"] = smi["stdout"].strip()
      check.record(stage, result)
    elif stage == "cnn_seed0":
      check.record(stage, train_cnn(check, runs / "seed_0"))
    elif stage == "bench":
      check.record(stage, bench(check, 240))
    elif stage == "cnn_repeat":
      result = train_cnn(check, runs / "seed_0_again")
      first = check.results["stages"].get("cnn_seed0", {})
      if "params_digest" in result and "params_digest" in first:
        result["bit_identical_to_first"] = (result["params_digest"] == first["params_digest"]
                                            and result["metrics_jsonl"] == first["metrics_jsonl"])
      check.record(stage, result)
    elif stage == "cnn_lr_sweep":
      check.record(stage, cnn_sweep(check, "experiments/sweeps/cnn_lr.py", runs / "cnn_lr"))
    elif stage == "cnn_search":
      check.record(stage, cnn_sweep(check, "experiments/sweeps/cnn_search.py", runs / "cnn_search", limit=150))
    elif stage == "cnn_nondet":
      check.record(stage, train_cnn(check, runs / "seed_0_nondeterministic", "--config.deterministic=False"))
    elif stage == "cnn_first_max":
      check.record(stage, train_cnn(check, runs / "seed_0_first_max", "--config.model.pool=first_max"))
    elif stage == "fast_tests":
      done = check.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", "tests"],
                       200)
      check.record(stage, {"returncode": done["returncode"], "seconds": done["seconds"],
                           "timed_out": done.get("timed_out"), "summary": _tail(done["stdout"], 25)})
    elif stage == "cnn_seeds":
      check.record(stage, {f"seed_{s}": train_cnn(check, runs / f"seed_{s}", f"--config.seed={s}") for s in (1, 2)})
  print(markdown(check.results))


def _has(command: str) -> bool:
  return any((pathlib.Path(d) / command).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def _headline(stage: str, result: dict) -> str:
  if "skipped" in result:
    return f"skipped: {result['skipped']}"
  if "test_accuracy" in result:
    target = result.get("time_to_target") or {}
    return (f"test accuracy {result['test_accuracy']:.2%}, wall {result['wall_from_launch_seconds']:.1f} s from launch, "
            f"99% at {target.get('seconds_from_launch', float('nan')):.1f} s")
  if "returncode" in result and result["returncode"] not in (0, None) or result.get("timed_out"):
    return f"FAILED ({result.get('returncode')}, {result.get('timed_out') or ''}): {result.get('output', '')[-300:]}"
  return json.dumps({k: v for k, v in result.items() if k in ("backend", "device_kind", "seconds", "summary")})[:300]


def _cnn_row(name: str, r: dict) -> str:
  if "test_accuracy" not in r:
    return f"| {name} | failed: {str(r.get('output', r))[-200:]} |"
  target = r.get("time_to_target") or {}
  return (f"| {name} | test accuracy {r['test_accuracy']:.2%}; wall {r['wall_from_launch_seconds']:.1f} s from launch "
          f"(run's own {r['wall_seconds']:.1f} s); 99.0% at {target.get('seconds_from_launch', float('nan')):.1f} s "
          f"(epoch {target.get('epoch', '-')}); compile {r['compile_seconds']:.1f} s; training {r['train_seconds']:.2f} s "
          f"= {r['train_images_per_second']:.0f} img/s |")


def markdown(results: dict) -> str:
  stages = results["stages"]
  lines = [f"# Device check, {results['started']}", "", "| what | result |", "|---|---|"]
  inventory = stages.get("inventory", {})
  if "backend" in inventory:
    lines.append(f"| device | {inventory.get('nvidia_smi') or inventory['device_kind']} ({inventory['backend']}, "
                 f"{len(inventory['devices'])} device(s)); Python {inventory['python']}; "
                 + ", ".join(f"{k} {v}" for k, v in inventory["versions"].items()) + " |")
  for name, label in (("cnn_seed0", "train-cnn seed 0, cold"), ("cnn_repeat", "train-cnn seed 0, again"),
                      ("cnn_nondet", "train-cnn seed 0, deterministic=False"),
                      ("cnn_first_max", "train-cnn seed 0, pool=first_max")):
    if name in stages and "skipped" not in stages[name]:
      lines.append(_cnn_row(label, stages[name]))
  for name, label in (("cnn_lr_sweep", "CNN learning-rate sweep"), ("cnn_search", "CNN Adam search with halving")):
    sweep = stages.get(name, {})
    if "test_accuracy" in sweep:
      accuracies = list(sweep["test_accuracy"].values())
      lines.append(f"| {label}, {len(accuracies)} runs in programs of {sweep['runs_in_program']} | "
                   f"wall {sweep['wall_from_launch_seconds']:.1f} s from launch; test accuracy "
                   f"{min(accuracies):.2%} to {max(accuracies):.2%} |")
  if "bit_identical_to_first" in stages.get("cnn_repeat", {}):
    lines.append(f"| two seed-0 runs bit-identical (params and every logged metric) | "
                 f"{stages['cnn_repeat']['bit_identical_to_first']} |")
  for seed, r in stages.get("cnn_seeds", {}).items():
    if isinstance(r, dict):
      lines.append(_cnn_row(f"train-cnn {seed}", r))
  deterministic = stages.get("bench", {}).get("cnn_train_deterministic")
  bench_results = stages.get("bench", {}).get("bench", {})
  if deterministic and "cnn_train" in bench_results and "images_per_second" in bench_results["cnn_train"]:
    lines.append(f"| CNN training step with / without XLA's deterministic ops | {deterministic['images_per_second']:.0f} / "
                 f"{bench_results['cnn_train']['images_per_second']:.0f} img/s |")
  tests = stages.get("fast_tests")
  if tests and "summary" in tests:
    lines.append(f"| fast tests | {tests['summary'].splitlines()[-1] if tests['summary'] else tests} |")
  if bench_results:
    from benchmarks import bench as bench_lib  # its table; importing it does not import JAX
    lines += ["", "## make bench rows", "", bench_lib.summary_table(bench_results)]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
