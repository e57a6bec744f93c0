"""Command line: `python -m nn_jax train|predict|sweep|report|export ...`.

Every problem with the input is reported as one line on stderr with exit code
2, before anything is written or computed.
"""

import argparse
import errno
import logging
import os
import pathlib
import sys
import time

from nn_jax import config as config_lib
from nn_jax.common.errors import UserError

DETERMINISTIC_GPU_FLAG = "--xla_gpu_deterministic_ops=true"


def process_start_time() -> float:
  """When this process started (time.time() scale), so time-to-target includes start-up and imports."""
  try:
    with open("/proc/self/stat") as f:
      started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
      uptime = float(f.read().split()[0])
    return time.time() - uptime + started_ticks / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):  # not Linux: the earliest moment this package saw
    return _IMPORTED_AT


_IMPORTED_AT = time.time()


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # argparse's default prints the whole usage block
    raise UserError(f"{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="python -m nn_jax", description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  train = commands.add_parser("train", help="train an experiment config into a run directory",
                              epilog="Override any config key with --config.KEY=VALUE, e.g. --config.num_epochs=3.")
  train.add_argument("--config", required=True, help="experiment file, e.g. experiments/house_mlp.py[:variant]")
  train.add_argument("--workdir", required=True, help="run directory; an existing one is resumed")
  predict = commands.add_parser("predict", help="predict from a run directory's latest checkpoint")
  predict.add_argument("--workdir", required=True, help="a run directory written by `train`")
  predict.add_argument("--input", required=True, action="append",
                       help="comma-separated raw features, e.g. 110,7; repeat for more examples")
  sweep = commands.add_parser("sweep", help="run a grid of experiments, program by program; resumes")
  sweep.add_argument("--sweep", required=True, help="sweep file, e.g. experiments/sweeps/rnn_cells.py")
  sweep.add_argument("--workdir", required=True, help="the sweep's folder; one run directory per grid point and seed")
  sweep.add_argument("--launcher", default="local", choices=("local", "slurm", "submitit_local"),
                     help="local: here, point after point; slurm: a job array, one task per point; "
                          "submitit_local: those tasks as processes here (default: local)")
  sweep.add_argument("--wait", action="store_true", help="slurm: wait for the tasks to finish")
  export = commands.add_parser("export", help="write a run's model as a jax.export function and its variables")
  export.add_argument("--workdir", required=True, help="a run directory written by `train`")
  report = commands.add_parser("report", help="tables and plots comparing every run below a folder")
  report.add_argument("workdir", help="a sweep's folder, or any folder holding run directories")
  report.add_argument("--metric", default="", help="SPLIT/NAME to plot, e.g. test/rmse (default: guessed)")
  report.add_argument("--out", default="", help="write the report here instead of into WORKDIR")
  return parser


def use_deterministic_ops(enabled: bool) -> None:
  """XLA reads its flags when the backend starts: set (or clear) GPU determinism before that."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_gpu_deterministic_ops")]
  os.environ["XLA_FLAGS"] = " ".join(flags + ([DETERMINISTIC_GPU_FLAG] if enabled else []))


def _train(args, overrides) -> None:
  config = config_lib.load(args.config, arguments=overrides)
  workdir = config_lib.workdir(args.workdir)
  use_deterministic_ops(config.deterministic)
  from nn_jax.common import parallel
  from nn_jax.training import interrupt, trainer  # imported late: bad input is reported before JAX starts
  with interrupt.StopRequest() as stop:  # from start-up on: a signal at any moment stops cleanly
    parallel.initialize_distributed(config.distributed)
    stop.agree_across_processes()
    if not parallel.is_primary():
      sys.stdout = open(os.devnull, "w")  # one log for the whole job: process 0's
    trainer.train_and_evaluate(config, workdir, launch=process_start_time(), stop=stop)


def _parse_input(text: str, num_features: int) -> list[float]:
  try:
    values = [float(part) for part in text.split(",")]
  except ValueError:
    values = []
  if len(values) != num_features:
    raise UserError(f"--input {text!r} must be {num_features} comma-separated numbers, e.g. --input 110,7")
  return values


def _predict(args) -> None:
  workdir = config_lib.workdir(args.workdir, must_exist=True)
  from nn_jax import data
  from nn_jax.common import parallel
  from nn_jax.training import tasks, trainer
  from nn_jax.training.evaluation import Evaluator
  config, model, variables = trainer.restore_for_inference(workdir)
  dataset = data.load(config.dataset)  # for its input scaling
  if len(dataset.input_shape) != 1:
    raise UserError(f"predict --input takes flat feature vectors; {config.name}'s input has shape {dataset.input_shape}")
  raw = [_parse_input(text, dataset.input_shape[0]) for text in args.input]
  evaluator = Evaluator(model, tasks.TASKS[config.loss], dataset, parallel.make_mesh(), len(raw), on_device=False)
  evaluator.predict(variables, raw)


def _sweep(args, slurm_arguments) -> None:
  from nn_jax.ablations import sweep
  from nn_jax.training import interrupt
  workdir = config_lib.workdir(args.workdir)
  if slurm_arguments and args.launcher == "local":
    raise UserError("--slurm.* parameters need --launcher slurm (or submitit_local)")
  parameters = {}
  if args.launcher != "local":
    from nn_jax.ablations import slurm
    parameters = slurm.parse_overrides(slurm_arguments)
  points = sweep.expand(sweep.load_sweep(args.sweep))
  use_deterministic_ops(all(config.deterministic for point in points for config in point.configs))
  with interrupt.StopRequest() as stop:  # between runs too: a signal stops the sweep cleanly
    if not sweep.run_sweep(args.sweep, workdir, stop, args.launcher, parameters, args.wait, points):
      print("Sweep stopped; run the same command again to finish it.")


def _export(args) -> None:
  from nn_jax import export
  out = export.export_run(config_lib.workdir(args.workdir, must_exist=True))
  print(f"Exported to {out}: " + ", ".join(export.FILES) + ". Load it with nn_jax.load_exported(path).")


def _report(args) -> None:
  from nn_jax.ablations import report
  root = config_lib.workdir(args.workdir, must_exist=True)
  if not root.is_dir():
    raise UserError(f"{args.workdir} does not exist; give a sweep's --workdir")
  print(report.write_report(root, args.metric, pathlib.Path(args.out) if args.out else None), end="")


def main(argv=None) -> int:
  # absl's INFO/WARNING chatter (orbax's OCDBT notes, TFDS's OpenCV hint) would bury the training log.
  logging.getLogger("absl").setLevel(logging.ERROR)
  argv = list(sys.argv[1:] if argv is None else argv)
  overrides = [a for a in argv if a.startswith("--config.")]
  slurm_arguments = [a for a in argv if a.startswith("--slurm.")]
  rest = [a for a in argv if not a.startswith(("--config.", "--slurm."))]
  try:
    args = _parser().parse_args(rest)
    if args.command != "train" and overrides:
      raise UserError(f"{args.command} takes no --config.* overrides")
    if args.command != "sweep" and slurm_arguments:
      raise UserError(f"{args.command} takes no --slurm.* parameters (sweep --launcher slurm does)")
    if args.command in ("predict", "report", "export"):
      from nn_jax.training import interrupt
      interrupt.stop_catching()  # nothing to save: signals act as usual
    {"train": lambda: _train(args, overrides), "predict": lambda: _predict(args),
     "sweep": lambda: _sweep(args, slurm_arguments), "report": lambda: _report(args), "export": lambda: _export(args)}[args.command]()
  except UserError as e:
    print(f"nn_jax: error: {e}", file=sys.stderr)
    return e.exit_code
  except Exception as e:
    full = _disk_full(e)
    if full is None:
      raise
    print(f"nn_jax: error: no space left on the device writing {full.filename or 'the run directory'}; free "
          f"space, then run the same command again (a run resumes from its last complete checkpoint)",
          file=sys.stderr)
    return 1
  return 0


def _disk_full(error: BaseException):
  """The full-disk OSError in `error`'s chain (orbax wraps the one its writer thread met), or None."""
  while error is not None:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
      return error
    error = error.__cause__ or error.__context__
  return None
