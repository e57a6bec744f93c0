"""`make bench` (python -m benchmarks.bench): speed and memory of the training paths, on this machine.

A script, never a timed test. Each case runs in its own subprocess (so its peak
resident memory is its own), times its work after compilation, and reports the
median of several repeats. Prints a table and writes bench.json.

CNN FLOPs per image (multiply-add = 2 FLOPs; valid 3x3 convolutions), the architecture's,
as the plain formulation executes them:
  conv_0  26*26*32 outputs * 9*1 inputs * 2      =   389,376
  conv_1  11*11*64 outputs * 9*32 inputs * 2     = 4,460,544
  dense_0 1600*128*2 = 409,600;  logits 128*10*2 = 2,560
  forward 5,262,080; training = 3x forward for every layer but conv_0, whose
  input needs no gradient (2x): 15,396,928 FLOPs per training image.
"Of peak" divides these model FLOPs/s by the measured matmul peak. The fused path
executes different FLOPs for the same function (nn_jax/models/conv_pool.py):
  conv_0  169 pooled outputs * (16 inputs x 4*32) * 2 = 692,224 forward, as much for the kernel gradient
  conv_1  10*10 outputs (pooling drops the 11th row and column) * 9*32 * 64 * 2 = 3,686,400 per pass
  training: 2*692,224 + 3*(3,686,400 + 409,600 + 2,560) = 13,680,128 executed FLOPs per image.
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

FORWARD_FLOPS = {"conv_0": 26 * 26 * 32 * 9 * 1 * 2, "conv_1": 11 * 11 * 64 * 9 * 32 * 2,
                 "dense_0": 1600 * 128 * 2, "logits": 128 * 10 * 2}
CNN_TRAIN_FLOPS = 2 * FORWARD_FLOPS["conv_0"] + 3 * (sum(FORWARD_FLOPS.values()) - FORWARD_FLOPS["conv_0"])
FUSED_CNN_TRAIN_FLOPS = (2 * 169 * 16 * 128 * 2
                         + 3 * (100 * 288 * 64 * 2 + FORWARD_FLOPS["dense_0"] + FORWARD_FLOPS["logits"]))
CNN_EVAL_FLOPS = sum(FORWARD_FLOPS.values())


def _median_seconds(run, repeats: int, per_repeat: int) -> float:
  """Median over `repeats` of the time of `per_repeat` calls of `run` (which blocks), per call."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(per_repeat):
      run()
    times.append((time.perf_counter() - start) / per_repeat)
  return float(np.median(times))


def case_matmul_peak(repeats):
  import jax
  import jax.numpy as jnp
  n = 2048
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  f(a, b).block_until_ready()
  seconds = _median_seconds(lambda: f(a, b).block_until_ready(), repeats, 5)
  return {"gflops": 2 * n ** 3 / seconds / 1e9}


def _train_step_case(config_spec: str, overrides: dict, batch_shape, num_classes, repeats, per_repeat):
  """Compile time and seconds per step of the trainer's own step, on a batch already on the device, and
  (config, model, holder of the state, step, inputs, targets, run: one step, waited for)."""
  import jax
  from nn_jax import config as config_lib
  from nn_jax.training import program
  inputs, targets = _random_data(batch_shape, num_classes)
  built = program.build([config_lib.load(config_spec, {**overrides, "batch_size": batch_shape[0]})], inputs, targets)
  config, model = built.config, built.model
  state = program.initial_state(config, model, batch_shape[1:])
  batch = jax.device_put((inputs, targets))
  start = time.perf_counter()
  step = jax.jit(built.train_step, donate_argnums=0).lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics)

  for _ in range(3):
    run()
  return compile_seconds, _median_seconds(run, repeats, per_repeat), (config, model, holder, step, inputs, targets, run)


def _random_data(shape, num_classes: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  inputs = rng.random(shape, dtype=np.float32)
  targets = (rng.integers(0, num_classes, shape[0]).astype(np.int32) if num_classes
             else rng.random((shape[0], 1), dtype=np.float32))
  return inputs, targets


def case_cnn_train(repeats, conv_impl="auto", microbatch_size=0, per_repeat=10, compute_dtype="float32"):
  from nn_jax.training import program
  overrides = {"model.conv_impl": conv_impl, "microbatch_size": microbatch_size, "compute_dtype": compute_dtype}
  compile_seconds, seconds, (config, *_) = _train_step_case("experiments/cnn_mnist.py", overrides,
                                                            (200, 28, 28, 1), 10, repeats, per_repeat)
  executed = FUSED_CNN_TRAIN_FLOPS if config.model.conv_impl == "fused" else CNN_TRAIN_FLOPS
  return {"images_per_second": 200 / seconds, "step_ms": seconds * 1e3, "compile_seconds": compile_seconds,
          "gflops": 200 / seconds * CNN_TRAIN_FLOPS / 1e9, "executed_gflops": 200 / seconds * executed / 1e9,
          "microbatches": program.microbatch_count(200, config.microbatch_size), "conv_impl": config.model.conv_impl}


def case_cnn_eval(repeats, conv_impl="auto", compute_dtype="float32"):
  import jax
  from nn_jax import config as config_lib
  from nn_jax import models
  from nn_jax.training import program, step
  config = config_lib.load("experiments/cnn_mnist.py", {"model.conv_impl": conv_impl, "compute_dtype": compute_dtype})
  model = models.build(config.model, compute_dtype)
  variables = program.initial_state(config, model, (28, 28, 1)).variables()
  x = jax.device_put(np.random.default_rng(0).random((1000, 28, 28, 1), dtype=np.float32))
  predict = jax.jit(step.make_predict(model))
  predict(variables, x).block_until_ready()
  seconds = _median_seconds(lambda: predict(variables, x).block_until_ready(), repeats, 3)
  return {"images_per_second": 1000 / seconds, "gflops": 1000 / seconds * CNN_EVAL_FLOPS / 1e9}


def case_cnn_eval_runs(repeats, runs=4, examples=10000):
  """The trainer's evaluation of one split for R runs of one program (variables stacked on the run axis),
  as a sweep evaluates them: images per second over all runs."""
  import jax
  from nn_jax import config as config_lib
  from nn_jax import models
  from nn_jax.common import parallel
  from nn_jax.data.dataset import Dataset
  from nn_jax.training import evaluation, program, tasks
  configs = [config_lib.load("experiments/cnn_mnist.py", {"seed": seed}) for seed in range(runs)]
  model = models.build(configs[0].model)
  variables = program.stack([program.initial_state(c, model, (28, 28, 1)) for c in configs]).variables()
  dataset = Dataset("random", {"test": _random_data((examples, 28, 28, 1), 10)})
  evaluator = evaluation.Evaluator(model, tasks.TASKS[configs[0].loss], dataset, parallel.make_mesh(),
                                   configs[0].eval_batch_size, on_device=True)
  evaluator.evaluate_runs(variables, ["test"])
  seconds = _median_seconds(lambda: jax.block_until_ready(evaluator.evaluate_runs(variables, ["test"])), repeats, 1)
  return {"images_per_second": runs * examples / seconds, "runs": runs}


def _epoch_loop(config_spec: str, overrides: dict, shape, num_classes: int):
  """The trainer's own epoch loop (nn_jax/training/loop.py) over random data of `shape`, without checkpoints."""
  from nn_jax import config as config_lib
  from nn_jax.common import parallel
  from nn_jax.training import program
  configs = [config_lib.load(config_spec, {**overrides, "progress": False, "num_epochs": 10 ** 6})]
  inputs, targets = _random_data(shape, num_classes, seed=1)
  built = program.build(configs, inputs, targets)
  mesh = parallel.make_mesh()
  return built.config, built.loop(configs, inputs, targets, mesh, built.initial_states(configs, mesh))


def _epoch_seconds(epoch_loop) -> float:
  """Wall seconds of the loop's next epoch, compilation excluded (it reports it apart)."""
  from nn_jax.training import interrupt
  runs = epoch_loop.run(interrupt.StopRequest())  # never entered: no signal handlers, never stops
  before = epoch_loop.compile_seconds
  start = time.perf_counter()
  next(runs)
  return time.perf_counter() - start - (epoch_loop.compile_seconds - before)


def case_cnn_loop(repeats, examples=12000):
  """The trainer's epoch loop on MNIST-shaped data, alternating with the same step timed alone on a batch
  already on the device: how close the loop (batches gathered, steps dispatched K at a time, metrics
  folded) comes to the benchmarked step."""
  _, step_seconds, (_, _, holder, step, inputs, targets, _) = _train_step_case(
      "experiments/cnn_mnist.py", {}, (200, 28, 28, 1), 10, 1, 1)
  config, epoch_loop = _epoch_loop("experiments/cnn_mnist.py", {}, (examples, 28, 28, 1), 10)
  _epoch_seconds(epoch_loop)  # compiles the dispatch programs
  import jax
  batch = jax.device_put((inputs, targets))
  steps = examples // 200
  loop_times, step_times = [], []
  for _ in range(repeats):
    loop_times.append(_epoch_seconds(epoch_loop) / steps)
    start = time.perf_counter()
    for _ in range(steps):
      holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics)
    step_times.append((time.perf_counter() - start) / steps)
  loop_seconds, step_seconds = float(np.median(loop_times)), float(np.median(step_times))
  return {"loop_step_ms": loop_seconds * 1e3, "step_ms": step_seconds * 1e3, "ratio": loop_seconds / step_seconds,
          "loop_images_per_second": 200 / loop_seconds, "data_on_device": config.data_on_device,
          "steps_per_dispatch": config.steps_per_dispatch}


def case_cnn_epoch(repeats, steps_per_dispatch, data_on_device="auto"):
  """Seconds per MNIST-sized CNN epoch (60,000 random images, 300 steps) in the trainer's loop at K steps
  per dispatch: what `steps_per_dispatch` is chosen from on an accelerator."""
  config, epoch_loop = _epoch_loop("experiments/cnn_mnist.py", {"steps_per_dispatch": steps_per_dispatch,
                                                                "data_on_device": data_on_device},
                                   (60000, 28, 28, 1), 10)
  _epoch_seconds(epoch_loop)
  seconds = float(np.median([_epoch_seconds(epoch_loop) for _ in range(repeats)]))
  return {"epoch_seconds": seconds, "images_per_second": 60000 // 200 * 200 / seconds,
          "steps_per_dispatch": config.steps_per_dispatch, "data_on_device": config.data_on_device}


def case_epoch(repeats, config_spec, steps_per_dispatch, data_on_device="auto"):
  """Seconds per epoch of the trainer's loop for a dispatch-bound model, at K steps per dispatch."""
  from nn_jax import config as config_lib
  from nn_jax import data
  dataset = data.load(config_lib.load(config_spec).dataset)
  inputs = dataset.splits["train"][0]
  num_classes = 2 if "fnn" in config_spec else 0
  config, epoch_loop = _epoch_loop(config_spec, {"steps_per_dispatch": steps_per_dispatch,
                                                 "data_on_device": data_on_device}, inputs.shape, num_classes)
  _epoch_seconds(epoch_loop)
  seconds = float(np.median([_epoch_seconds(epoch_loop) for _ in range(repeats * 5)]))
  return {"epoch_ms": seconds * 1e3, "steps_per_epoch": epoch_loop.steps_per_epoch,
          "steps_per_dispatch": config.steps_per_dispatch, "data_on_device": config.data_on_device}


def case_rnn_train(repeats, cell="lstm", batch=32, recurrence="auto"):
  from benchmarks import recurrences
  overrides = {"model.recurrence": recurrence}
  if recurrence in recurrences.RECURRENCES:  # the benchmark's own model, named as a researcher names theirs
    overrides["model.name"] = f"{pathlib.Path(recurrences.__file__)}:BenchSequenceRegressor"
  _, seconds, _ = _train_step_case(f"experiments/recurrent_series.py:{cell}", overrides, (batch, 10, 1), 0, repeats, 20)
  return {"sequences_per_second": batch / seconds, "step_ms": seconds * 1e3}


# What recurrence=auto picks off the CPU, where custom_vjp has not been measured.
ACCELERATOR_RECURRENCE = {"simple": "scan", "lstm": "optimized", "gru": "scan"}


def case_recurrence_pair(repeats, cell="lstm", batch=32):
  """The recurrence auto picks off the CPU and the hand-written backward pass (custom_vjp), training steps
  timed alternately in one process, so that both see the same machine."""
  compared = ACCELERATOR_RECURRENCE[cell]
  runs = {}
  for recurrence in (compared, "custom_vjp"):
    _, _, case = _train_step_case(f"experiments/recurrent_series.py:{cell}", {"model.recurrence": recurrence},
                                  (batch, 10, 1), 0, 1, 5)
    runs[recurrence] = case[-1]  # one step, waited for
  seconds = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      seconds[name].append(_median_seconds(run, 3, 20))
  compared_rate, custom_vjp_rate = (batch / float(np.median(seconds[name])) for name in (compared, "custom_vjp"))
  return {"compared": compared, "compared_sequences_per_second": compared_rate,
          "custom_vjp_sequences_per_second": custom_vjp_rate, "ratio": custom_vjp_rate / compared_rate}


def case_house_mlp(repeats):
  """The article's 2000 epochs in the trainer's own loop (one dispatch of 2000 full-batch steps) against
  the article's NumPy loop."""
  import jax
  from benchmarks import numpy_reference
  from nn_jax import config as config_lib
  from nn_jax import data
  from nn_jax.common import parallel
  from nn_jax.training import program
  configs = [config_lib.load("experiments/house_mlp.py", {"num_epochs": 10 ** 6, "log_every_epochs": 2000,
                                                          "checkpoint_every_epochs": 0, "steps_per_dispatch": 2000,
                                                          "progress": False})]
  inputs, targets = data.load(configs[0].dataset).splits["train"]
  built = program.build(configs, inputs, targets)
  mesh = parallel.make_mesh()
  state = built.initial_states(configs, mesh)
  params = jax.tree_util.tree_map(lambda a: np.asarray(a[0], np.float64), state.params)  # before the loop donates it
  epoch_loop = built.loop(configs, inputs, targets, mesh, state)
  _epoch_seconds(epoch_loop)  # compiles
  jax_seconds = float(np.median([_epoch_seconds(epoch_loop) for _ in range(repeats)]))
  x, y = (a.astype(np.float64) for a in (inputs, targets))
  numpy_seconds = _median_seconds(lambda: numpy_reference.train_article_mlp(params, x, y, 0.01, 2000), repeats, 1)
  return {"jax_seconds": jax_seconds, "compile_seconds": epoch_loop.compile_seconds, "numpy_seconds": numpy_seconds}


def case_cnn_checkpoint_save(repeats, saves=10):
  """What saving a CNN checkpoint (params, Adam moments, RNG key, position, digests) asynchronously costs the
  training thread (until `save` returns), and the whole save until it is on disk."""
  import pathlib
  import tempfile
  from nn_jax import config as config_lib
  from nn_jax import models
  from nn_jax.training import program
  from nn_jax.workdir.checkpoint import Checkpoints
  config = config_lib.load("experiments/cnn_mnist.py")
  state = program.initial_state(config, models.build(config.model, config.compute_dtype), (28, 28, 1))
  progress = {"epoch": 1, "batch": 0}
  blocking, whole = [], []
  with tempfile.TemporaryDirectory() as directory:
    checkpoints = Checkpoints(pathlib.Path(directory) / "checkpoints", asynchronous=True)
    for i in range(repeats * saves + 1):
      start = time.perf_counter()
      checkpoints.save(state.replace(step=i), progress)
      returned = time.perf_counter()
      checkpoints.wait()
      if i:  # the first save builds orbax's handlers
        blocking.append(returned - start)
        whole.append(time.perf_counter() - start)
    checkpoints.close()
  return {"save_returns_ms": float(np.median(blocking)) * 1e3, "save_on_disk_ms": float(np.median(whole)) * 1e3}


def case_torch_cnn(repeats):
  """PyTorch eager, the same CNN, batch 200, Adam, on this machine's accelerator (or CPU): a same-run
  reference (benchmarks/torch_reference.py). Skipped where torch is not installed."""
  from benchmarks import torch_reference
  return torch_reference.measure(repeats)


LSTM_ALTERNATIVES = ("scan", "nn_scan", "unrolled", "fused")  # the LSTM looped the other ways
DISPATCH_MODELS = {"fnn": "experiments/fnn_binary.py", "lstm": "experiments/recurrent_series.py:lstm",
                   "gru": "experiments/recurrent_series.py:gru", "simple": "experiments/recurrent_series.py:simple"}

CASES = {
    "matmul_peak": case_matmul_peak,
    "cnn_train": lambda r: case_cnn_train(r, "auto"),
    "cnn_train_plain": lambda r: case_cnn_train(r, "xla", microbatch_size=200),
    "cnn_train_bf16": lambda r: case_cnn_train(r, "auto", compute_dtype="bfloat16"),
    # Microbatches (cnn_train on CPU: the fused path's own choice, 50): the whole batch, 100, 25; and the
    # plain formulation given microbatches of 50 (slow, so fewer steps per repeat).
    **{f"cnn_train_microbatch_{size}": (lambda r, m=size: case_cnn_train(r, "fused", m)) for size in (200, 100, 25)},
    "cnn_train_plain_microbatch_50": lambda r: case_cnn_train(r, "xla", 50, per_repeat=2),
    "cnn_eval": lambda r: case_cnn_eval(r, "auto"),
    "cnn_eval_plain": lambda r: case_cnn_eval(r, "xla"),
    "cnn_eval_bf16": lambda r: case_cnn_eval(r, "auto", "bfloat16"),
    "cnn_eval_runs": case_cnn_eval_runs,
    "cnn_loop": case_cnn_loop,
    # Accelerators: a whole CNN epoch at K steps per dispatch, data on the device or sent from the host.
    **{f"cnn_epoch_k{k}": (lambda r, k=k: case_cnn_epoch(r, k)) for k in (1, 10, 100)},
    "cnn_epoch_k100_host": lambda r: case_cnn_epoch(r, 100, "false"),
    "torch_cnn": case_torch_cnn,
    **{f"{name}_epoch_k{k}": (lambda r, spec=spec, k=k: case_epoch(r, spec, k))
       for name, spec in DISPATCH_MODELS.items() for k in (1, 0)},
    **{f"{cell}_train_b{batch}": (lambda r, c=cell, b=batch: case_rnn_train(r, c, b))
       for cell in ("simple", "lstm", "gru") for batch in (32, 256)},
    # Each cell's recurrence off the CPU against the hand-written backward pass, alternately.
    **{f"{cell}_custom_vjp_b{batch}": (lambda r, c=cell, b=batch: case_recurrence_pair(r, c, b))
       for cell in ("simple", "lstm", "gru") for batch in (32, 256)},
    # The LSTM looped the other ways (same numbers: tests/rnn_test.py, tests/bench_recurrences_test.py).
    **{f"lstm_{recurrence}_b{batch}": (lambda r, rec=recurrence, b=batch: case_rnn_train(r, "lstm", b, rec))
       for recurrence in LSTM_ALTERNATIVES for batch in (32, 256)},
    "house_mlp": case_house_mlp,
    "cnn_checkpoint_save": case_cnn_checkpoint_save,
}
CPU_ONLY = ("cnn_train_microbatch_200", "cnn_train_microbatch_100", "cnn_train_microbatch_25",
            "cnn_train_plain_microbatch_50")  # the fused CPU path's ablations
ACCELERATOR_ONLY = ("cnn_epoch_k1", "cnn_epoch_k10", "cnn_epoch_k100", "cnn_epoch_k100_host")  # minutes each on CPU
# What `make device-check` times on an accelerator (tools/device_check.py), within its budget.
DEVICE_CHECK = ("matmul_peak", "cnn_train", "cnn_train_bf16", "cnn_eval", "cnn_eval_bf16", "cnn_eval_runs", "cnn_loop",
                "torch_cnn", *ACCELERATOR_ONLY, "simple_train_b32", "simple_train_b256", "lstm_train_b32",
                "lstm_train_b256", "gru_train_b32", "gru_train_b256", "fnn_epoch_k1", "fnn_epoch_k0", "lstm_epoch_k1",
                "lstm_epoch_k0", "house_mlp", "cnn_checkpoint_save")


def run_case(name: str, repeats: int) -> dict:
  result = CASES[name](repeats)
  result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return result


def _shown(value) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_cases(names, repeats: int, timeout: float | None = None, out: str | None = None,
              info: dict | None = None) -> dict:
  """Each case in its own subprocess; a case that fails or times out is recorded as such, not fatal.
  With `out`, the results so far are written there after each case."""
  results = {"machine": info or machine()}
  for name in names:
    try:
      done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--case", name, "--repeats", str(repeats)],
                            capture_output=True, text=True, timeout=timeout)
      if done.returncode:
        results[name] = {"error": done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else "failed"}
      else:
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
      results[name] = {"error": f"timed out after {timeout} s"}
    print(f"{name:30s} " + ", ".join(f"{k} {_shown(v)}" for k, v in results[name].items()), flush=True)
    if out:
      with open(out, "w") as f:
        json.dump(results, f, indent=2)
  return results


def default_cases(backend: str) -> list[str]:
  skipped = ACCELERATOR_ONLY if backend == "cpu" else CPU_ONLY
  return [name for name in CASES if name not in skipped]


def machine() -> dict:
  """The machine, asked in a subprocess: this process never starts JAX, so the cases have the device."""
  done = subprocess.run([sys.executable, "-c", "import json, os, jax; print(json.dumps({'device_kind': "
                         "jax.devices()[0].device_kind, 'backend': jax.default_backend(), 'cpu_count': os.cpu_count(), "
                         "'jax': jax.__version__}))"], capture_output=True, text=True)
  return json.loads(done.stdout.strip().splitlines()[-1])



def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
  parser.add_argument("--only", nargs="*", choices=list(CASES), help="run these cases only")
  parser.add_argument("--table", metavar="BENCH_JSON", help="print the Markdown table of an earlier run and exit")
  parser.add_argument("--out", default="bench.json")
  parser.add_argument("--case-timeout", type=float, default=None, help="seconds before a case counts as failed")
  args = parser.parse_args()
  if args.case:
    print(json.dumps(run_case(args.case, args.repeats)))
    return
  if args.table:
    with open(args.table) as f:
      print(summary_table(json.load(f)))
    return
  info = machine()
  results = run_cases(args.only or default_cases(info["backend"]), args.repeats, args.case_timeout, args.out, info)
  print(summary_table(results))
  print(f"Wrote {args.out}")


def _ok(r: dict, name: str):
  case = r.get(name)
  return case if case and "error" not in case and "skipped" not in case else None


def summary_table(r: dict) -> str:
  """The Markdown table docs/performance.md quotes, from a bench.json."""
  from nn_jax.models import rnn
  lines = ["| measure | value |", "|---|---|"]
  if "machine" in r:
    m = r["machine"]
    lines.append(f"| machine | {m['device_kind']} ({m['backend']}), {m['cpu_count']} CPU cores, jax {m['jax']} |")
  peak = (_ok(r, "matmul_peak") or {}).get("gflops")
  if peak:
    lines.append(f"| float32 matmul peak (2048², jit) | {peak:.1f} GFLOP/s |")
  for name, label in (("cnn_train", "CNN training, ours (conv_impl=auto)"),
                      ("cnn_train_plain", "CNN training, plain nn.Conv/nn.max_pool, whole batch"),
                      ("cnn_train_bf16", "CNN training, ours, bfloat16")):
    c = _ok(r, name)
    if c:
      label += f" → {c.get('conv_impl', '')}" if name != "cnn_train_plain" else ""
      label += f", {c['microbatches']} microbatches" if c.get("microbatches", 1) > 1 else ""
      share = f", {c['gflops'] / peak:.1%} of peak" if peak else ""
      executed = (f"; executed {c['executed_gflops']:.1f} GFLOP/s" if c.get("executed_gflops", c["gflops"]) != c["gflops"]
                  else "")
      lines.append(f"| {label}, batch 200 | {c['images_per_second']:.0f} img/s (model {c['gflops']:.1f} GFLOP/s{share}"
                   f"{executed}); compile {c['compile_seconds']:.2f} s; peak RSS {c['peak_rss_mib']:.0f} MiB |")
  if _ok(r, "cnn_train") and _ok(r, "cnn_train_plain"):
    lines.append(f"| ours / plain | {r['cnn_train']['images_per_second'] / r['cnn_train_plain']['images_per_second']:.2f}x |")
  ablation = [(f"ours, microbatches of {size}", _ok(r, f"cnn_train_microbatch_{size}")) for size in (200, 100, 25)]
  ablation.append(("plain, microbatches of 50", _ok(r, "cnn_train_plain_microbatch_50")))
  shown = [f"{label} {c['images_per_second']:.0f}" + (f" ({c['gflops'] / peak:.1%})" if peak else "")
           for label, c in ablation if c]
  if shown:
    lines.append(f"| CNN training, batch 200, other microbatch sizes: img/s (of peak) | {'; '.join(shown)} |")
  for name, label in (("cnn_eval", "CNN evaluation, ours"), ("cnn_eval_plain", "CNN evaluation, plain"),
                      ("cnn_eval_bf16", "CNN evaluation, ours, bfloat16")):
    c = _ok(r, name)
    if c:
      lines.append(f"| {label}, batch 1000 | {c['images_per_second']:.0f} img/s; peak RSS {c['peak_rss_mib']:.0f} MiB |")
  c = _ok(r, "cnn_eval_runs")
  if c:
    lines.append(f"| CNN evaluation of {c['runs']} runs of one program, batch 1000 | {c['images_per_second']:.0f} img/s "
                 f"over all runs |")
  torch = r.get("torch_cnn")
  if torch and "skipped" not in torch and "error" not in torch:
    lines.append(f"| PyTorch {torch['torch']} eager CNN ({torch['device']}), batch 200: training / evaluation | "
                 f"{torch['train_images_per_second']:.0f} / {torch['eval_images_per_second']:.0f} img/s |")
    if _ok(r, "cnn_train"):
      lines.append(f"| ours / PyTorch eager, training | "
                   f"{r['cnn_train']['images_per_second'] / torch['train_images_per_second']:.2f}x |")
  loop = _ok(r, "cnn_loop")
  if loop:
    lines.append(f"| CNN: the trainer's loop / the step alone (data_on_device={loop['data_on_device']}, "
                 f"{loop['steps_per_dispatch']} steps per dispatch) | {loop['loop_step_ms']:.2f} / {loop['step_ms']:.2f} "
                 f"ms per step = {loop['ratio']:.3f} ({loop['loop_images_per_second']:.0f} img/s in the loop) |")
  save = _ok(r, "cnn_checkpoint_save")
  if save:
    lines.append(f"| CNN checkpoint save (asynchronous): until `save` returns / until on disk | "
                 f"{save['save_returns_ms']:.1f} / {save['save_on_disk_ms']:.1f} ms |")
  epochs = [(name, _ok(r, name)) for name in ACCELERATOR_ONLY]
  shown = [f"K={c['steps_per_dispatch']}{' (host data)' if c['data_on_device'] == 'false' else ''} "
           f"{c['epoch_seconds']:.2f} s ({c['images_per_second']:.0f} img/s)" for _, c in epochs if c]
  if shown:
    lines.append(f"| CNN epoch of 60,000 images in the trainer's loop, K steps per dispatch | {'; '.join(shown)} |")
  for name in DISPATCH_MODELS:
    one, auto_k = _ok(r, f"{name}_epoch_k1"), _ok(r, f"{name}_epoch_k0")
    if one and auto_k:
      lines.append(f"| {name} epoch ({one['steps_per_epoch']} steps): 1 / {auto_k['steps_per_dispatch']} steps per "
                   f"dispatch | {one['epoch_ms']:.2f} / {auto_k['epoch_ms']:.2f} ms = {one['epoch_ms'] / auto_k['epoch_ms']:.2f}x |")
  backend = r.get("machine", {}).get("backend", "cpu")
  rows = [(f"{cell}_train", f"{cell} (recurrence=auto: {rnn.resolve_recurrence('auto', cell, backend)}) training "
                           f"(50 units, 10 steps)") for cell in ("simple", "lstm", "gru")]
  rows += [(f"lstm_{recurrence}", f"lstm training, recurrence={recurrence}") for recurrence in LSTM_ALTERNATIVES]
  for cell in ("simple", "lstm", "gru"):
    pair = [_ok(r, f"{cell}_custom_vjp_b{b}") for b in (32, 256)]
    if all(pair):
      lines.append(f"| {cell} training, recurrence {pair[0]['compared']} / custom_vjp (alternating), batch 32; 256 | "
                   + "; ".join(f"{c['compared_sequences_per_second']:.0f} / {c['custom_vjp_sequences_per_second']:.0f} "
                               f"seq/s = {c['ratio']:.2f}x" for c in pair) + " |")
  for prefix, label in rows:
    cells = [_ok(r, f"{prefix}_b{b}") for b in (32, 256)]
    if all(cells):
      lines.append(f"| {label}, batch 32 / 256 | {cells[0]['sequences_per_second']:.0f} / "
                   f"{cells[1]['sequences_per_second']:.0f} seq/s; peak RSS {cells[1]['peak_rss_mib']:.0f} MiB |")
  h = _ok(r, "house_mlp")
  if h:
    lines.append(f"| house MLP, 2000 epochs: JAX scan (after {h['compile_seconds']:.2f} s compile) / article's NumPy "
                 f"loop | {h['jax_seconds'] * 1e3:.1f} / {h['numpy_seconds'] * 1e3:.1f} ms; peak RSS "
                 f"{h['peak_rss_mib']:.0f} MiB |")
  failed = [f"{name} ({case['error']})" for name, case in r.items() if isinstance(case, dict) and "error" in case]
  if failed:
    lines.append(f"| failed cases | {'; '.join(failed)} |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
