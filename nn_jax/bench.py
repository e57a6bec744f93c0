"""`make bench` (python -m nn_jax.bench): speed and memory of the training paths, on this machine.

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
  """Compile time and seconds per step of the trainer's own step, on a batch already on the device."""
  import jax
  from nn_jax import config as config_lib
  from nn_jax import models, tasks, train
  config = config_lib.load_config(config_spec)
  for key, value in overrides.items():
    config_lib.apply_override(config, f"{key}={value!r}")
  model = models.build(config.model, config.compute_dtype)
  state = train.initial_state(config, model, batch_shape[1:])
  rng = np.random.default_rng(0)
  inputs = rng.random(batch_shape, dtype=np.float32)
  targets = (rng.integers(0, num_classes, batch_shape[0]).astype(np.int32) if num_classes
             else rng.random((batch_shape[0], 1), dtype=np.float32))
  batch = jax.device_put((inputs, targets))
  start = time.perf_counter()
  microbatches = train.microbatch_count(config, model, batch_shape[0])
  step = jax.jit(train.make_train_step(tasks.TASKS[config.loss], microbatches), donate_argnums=0)
  step = step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics)

  for _ in range(3):
    run()
  return compile_seconds, _median_seconds(run, repeats, per_repeat), (config, model, holder, step, inputs, targets)


def case_cnn_train(repeats, conv_impl="fused", microbatch_size=0, per_repeat=10):
  from nn_jax import train
  overrides = {"model.conv_impl": conv_impl, "microbatch_size": microbatch_size}
  compile_seconds, seconds, (config, model, *_) = _train_step_case("experiments/cnn_mnist.py", overrides,
                                                                   (200, 28, 28, 1), 10, repeats, per_repeat)
  executed = FUSED_CNN_TRAIN_FLOPS if conv_impl == "fused" else CNN_TRAIN_FLOPS
  return {"images_per_second": 200 / seconds, "step_ms": seconds * 1e3, "compile_seconds": compile_seconds,
          "gflops": 200 / seconds * CNN_TRAIN_FLOPS / 1e9, "executed_gflops": 200 / seconds * executed / 1e9,
          "microbatches": train.microbatch_count(config, model, 200)}


def case_cnn_eval(repeats, conv_impl="fused"):
  import jax
  from nn_jax import config as config_lib
  from nn_jax import models, train
  config = config_lib.load_config("experiments/cnn_mnist.py")
  config.model.conv_impl = conv_impl
  model = models.build(config.model)
  params = train.init_params(model, (28, 28, 1), jax.random.key(0))
  x = jax.device_put(np.random.default_rng(0).random((1000, 28, 28, 1), dtype=np.float32))
  predict = jax.jit(lambda p, x: model.apply({"params": p}, x))
  predict(params, x).block_until_ready()
  seconds = _median_seconds(lambda: predict(params, x).block_until_ready(), repeats, 3)
  return {"images_per_second": 1000 / seconds, "gflops": 1000 / seconds * CNN_EVAL_FLOPS / 1e9}


def case_cnn_input_path(repeats):
  """The step time fed as the trainer feeds it (host gather by the epoch's permutation, then
  placed on the mesh, steps dispatched without waiting, as nn_jax/loop.py does) against the same
  steps on a batch already on the device; the two alternate, 10 steps at a time."""
  import jax
  from nn_jax import loop, parallel
  _, _, (_, _, holder, step, inputs, targets) = _train_step_case(
      "experiments/cnn_mnist.py", {}, (200, 28, 28, 1), 10, 1, 1)
  rng = np.random.default_rng(1)
  images = rng.random((60000, 28, 28, 1), dtype=np.float32)
  labels = rng.integers(0, 10, 60000).astype(np.int32)
  order = loop.epoch_permutation(0, 0, 60000)
  mesh = parallel.make_mesh()
  on_device = parallel.global_batch(mesh, (inputs, targets))
  position = {"batch": 0}

  def fed_batch():
    b = position["batch"] = (position["batch"] + 1) % 300
    indices = order[b * 200:(b + 1) * 200]
    return parallel.global_batch(mesh, (images[indices], labels[indices]))

  def ten_steps(next_batch):
    start = time.perf_counter()
    for _ in range(10):
      holder["state"], metrics = step(holder["state"], next_batch())
    jax.block_until_ready(metrics)
    return (time.perf_counter() - start) / 10

  times = {"device": [], "fed": []}
  for _ in range(repeats):
    times["device"].append(ten_steps(lambda: on_device))
    times["fed"].append(ten_steps(fed_batch))
  device_seconds, fed_seconds = (float(np.median(times[k])) for k in ("device", "fed"))
  return {"device_batch_step_ms": device_seconds * 1e3, "real_input_step_ms": fed_seconds * 1e3,
          "ratio": fed_seconds / device_seconds}


def case_rnn_train(repeats, cell="lstm", batch=32, recurrence="auto"):
  _, seconds, _ = _train_step_case(f"experiments/recurrent_series.py:{cell}", {"model.recurrence": recurrence},
                                   (batch, 10, 1), 0, repeats, 20)
  return {"sequences_per_second": batch / seconds, "step_ms": seconds * 1e3}


def case_house_mlp(repeats):
  """The article's 2000 epochs: the trainer's compiled scan against the article's NumPy loop."""
  import jax
  from nn_jax import config as config_lib
  from nn_jax import data, loop, models, numpy_reference, tasks, train
  config = config_lib.load_config("experiments/house_mlp.py")
  dataset = data.load(config.dataset)
  model = models.build(config.model)
  state = train.initial_state(config, model, dataset.input_shape)
  batch = jax.device_put(dataset.splits["train"])
  scan = jax.jit(loop._full_batch_epochs(train.make_train_step(tasks.TASKS[config.loss])), static_argnums=2)
  start = time.perf_counter()
  compiled = scan.lower(state, batch, 2000).compile()
  compile_seconds = time.perf_counter() - start
  jax_seconds = _median_seconds(lambda: jax.block_until_ready(compiled(state, batch)), repeats, 1)
  params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), state.params)
  x, y = (a.astype(np.float64) for a in dataset.splits["train"])
  numpy_seconds = _median_seconds(lambda: numpy_reference.train_article_mlp(params, x, y, 0.01, 2000), repeats, 1)
  return {"jax_seconds": jax_seconds, "compile_seconds": compile_seconds, "numpy_seconds": numpy_seconds}


LSTM_ALTERNATIVES = ("scan", "nn_scan", "unrolled", "fused")  # to recurrence=auto, which picks optimized

CASES = {
    "matmul_peak": case_matmul_peak,
    "cnn_train": lambda r: case_cnn_train(r, "fused"),
    "cnn_train_plain": lambda r: case_cnn_train(r, "xla"),
    # Microbatches (cnn_train: the fused path's own choice, 50): the whole batch, 100, 25; and the
    # plain formulation given microbatches of 50 (slow, so fewer steps per repeat).
    **{f"cnn_train_microbatch_{size}": (lambda r, m=size: case_cnn_train(r, "fused", m)) for size in (200, 100, 25)},
    "cnn_train_plain_microbatch_50": lambda r: case_cnn_train(r, "xla", 50, per_repeat=2),
    "cnn_eval": lambda r: case_cnn_eval(r, "fused"),
    "cnn_eval_plain": lambda r: case_cnn_eval(r, "xla"),
    "cnn_input_path": case_cnn_input_path,
    **{f"{cell}_train_b{batch}": (lambda r, c=cell, b=batch: case_rnn_train(r, c, b))
       for cell in ("simple", "lstm", "gru") for batch in (32, 256)},
    # The LSTM looped the other ways the model offers (same numbers, tests/rnn_test.py).
    **{f"lstm_{recurrence}_b{batch}": (lambda r, rec=recurrence, b=batch: case_rnn_train(r, "lstm", b, rec))
       for recurrence in LSTM_ALTERNATIVES for batch in (32, 256)},
    "house_mlp": case_house_mlp,
}


def run_case(name: str, repeats: int) -> dict:
  result = CASES[name](repeats)
  result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
  parser.add_argument("--only", nargs="*", choices=list(CASES), help="run these cases only")
  parser.add_argument("--out", default="bench.json")
  args = parser.parse_args()
  if args.case:
    print(json.dumps(run_case(args.case, args.repeats)))
    return
  results = {}
  for name in args.only or CASES:
    done = subprocess.run([sys.executable, "-m", "nn_jax.bench", "--case", name, "--repeats", str(args.repeats)],
                          capture_output=True, text=True)
    if done.returncode:
      raise SystemExit(f"bench case {name} failed:\n{done.stderr[-2000:]}")
    results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name:18s} " + ", ".join(f"{k} {v:.4g}" for k, v in results[name].items()), flush=True)
  import jax
  results["machine"] = {"device_kind": jax.devices()[0].device_kind, "backend": jax.default_backend(),
                        "cpu_count": __import__("os").cpu_count(), "jax": jax.__version__}
  print(summary_table(results))
  with open(args.out, "w") as f:
    json.dump(results, f, indent=2)
  print(f"Wrote {args.out}")


def summary_table(r: dict) -> str:
  from nn_jax.models import rnn
  lines = ["| measure | value |", "|---|---|"]
  peak = r.get("matmul_peak", {}).get("gflops")
  if peak:
    lines.append(f"| float32 matmul peak (2048², jit) | {peak:.1f} GFLOP/s |")
  for name, label in (("cnn_train", "CNN training, ours (conv_impl=auto)"), ("cnn_train_plain", "CNN training, plain nn.Conv/nn.max_pool")):
    if name in r:
      c = r[name]
      label += f" in {c['microbatches']} microbatches" if c.get("microbatches", 1) > 1 else ""
      share = f", {c['gflops'] / peak:.1%} of peak" if peak else ""
      executed = (f"; executed {c['executed_gflops']:.1f} GFLOP/s" if c.get("executed_gflops", c["gflops"]) != c["gflops"]
                  else "")
      lines.append(f"| {label}, batch 200 | {c['images_per_second']:.0f} img/s (model {c['gflops']:.1f} GFLOP/s{share}"
                   f"{executed}); compile {c['compile_seconds']:.2f} s; peak RSS {c['peak_rss_mib']:.0f} MiB |")
  if "cnn_train" in r and "cnn_train_plain" in r:
    lines.append(f"| ours / plain | {r['cnn_train']['images_per_second'] / r['cnn_train_plain']['images_per_second']:.2f}x |")
  ablation = [(f"ours, microbatches of {size}", r.get(f"cnn_train_microbatch_{size}")) for size in (200, 100, 25)]
  ablation.append(("plain, microbatches of 50", r.get("cnn_train_plain_microbatch_50")))
  shown = [f"{label} {c['images_per_second']:.0f}" + (f" ({c['gflops'] / peak:.1%})" if peak else "")
           for label, c in ablation if c]
  if shown:
    lines.append(f"| CNN training, batch 200, other microbatch sizes: img/s (of peak) | {'; '.join(shown)} |")
  for name, label in (("cnn_eval", "CNN evaluation, ours"), ("cnn_eval_plain", "CNN evaluation, plain")):
    if name in r:
      lines.append(f"| {label}, batch 1000 | {r[name]['images_per_second']:.0f} img/s; "
                   f"peak RSS {r[name]['peak_rss_mib']:.0f} MiB |")
  if "cnn_input_path" in r:
    c = r["cnn_input_path"]
    lines.append(f"| CNN step: real input path / batch on device | {c['real_input_step_ms']:.1f} / "
                 f"{c['device_batch_step_ms']:.1f} ms = {c['ratio']:.2f} |")
  for cell in ("simple", "lstm", "gru"):
    cells = [r.get(f"{cell}_train_b{b}") for b in (32, 256)]
    if all(cells):
      label = f"{cell} (recurrence=auto: {rnn.resolve_recurrence('auto', cell)})"
      lines.append(f"| {label} training (50 units, 10 steps), batch 32 / 256 | {cells[0]['sequences_per_second']:.0f} / "
                   f"{cells[1]['sequences_per_second']:.0f} seq/s; peak RSS {cells[1]['peak_rss_mib']:.0f} MiB |")
  for recurrence in LSTM_ALTERNATIVES:
    cells = [r.get(f"lstm_{recurrence}_b{b}") for b in (32, 256)]
    if all(cells):
      lines.append(f"| lstm training, recurrence={recurrence}, batch 32 / 256 | {cells[0]['sequences_per_second']:.0f} / "
                   f"{cells[1]['sequences_per_second']:.0f} seq/s |")
  if "house_mlp" in r:
    h = r["house_mlp"]
    lines.append(f"| house MLP, 2000 epochs: JAX scan (after {h['compile_seconds']:.2f} s compile) / article's NumPy "
                 f"loop | {h['jax_seconds'] * 1e3:.1f} / {h['numpy_seconds'] * 1e3:.1f} ms; peak RSS "
                 f"{h['peak_rss_mib']:.0f} MiB |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
