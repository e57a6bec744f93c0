"""Sweeps on a cluster through submitit: one job-array task per program (its runs vmapped).

`python -m nn_jax sweep --sweep FILE --workdir DIR --launcher slurm [--slurm.KEY=VALUE ...]` submits
the sweep's programs that still have runs to do as one SLURM job array (`sbatch --array=0-N%P`). Each task
runs its program as the local launcher does (nn_jax/ablations/sweep.py), into the same DIR/<point>/seed_<n>/
run directories, so `report` reads either. A task that SLURM preempts or whose time runs out gets
submitit's signal (USR2, `signal_delay_s` before the end): its run saves at the next step boundary and
stops, and submitit requeues the task, which resumes from that checkpoint. SIGTERM (scancel, or a
preemption that SLURM requeues itself) also saves and stops.

`--launcher submitit_local` runs the same tasks as processes of this machine (submitit's
LocalExecutor, which requeues the same way) and waits for them: the cluster path, testable anywhere.

Resources: the sweep file's "slurm" dict, then --slurm.KEY=VALUE, in submitit's AutoExecutor names:
timeout_min, gpus_per_node, cpus_per_task, mem_gb, slurm_partition, slurm_account, slurm_qos,
slurm_array_parallelism, slurm_additional_parameters, ... (cluster-specific ones are ignored by the
other launcher).
"""

import ast
import os
import pathlib
import signal
import tempfile
import time

import submitit

from nn_jax.common.errors import UserError

LAUNCHERS = {"slurm": "slurm", "submitit_local": "local"}  # ours -> submitit's cluster name
DEFAULTS = {"timeout_min": 60, "cpus_per_task": 4, "slurm_signal_delay_s": 120,
            "slurm_additional_parameters": {"requeue": True}}  # requeueable after preemption


def preemption_signal() -> signal.Signals:
  """The signal submitit's job environment treats as "preempted or timed out: requeue"."""
  return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


class ProgramTask(submitit.helpers.Checkpointable):
  """One program of a sweep, what each array task runs. Checkpointable: on preemption submitit
  resubmits this same call, and the program's runs resume from their run directories. `run_program`
  is the sweep's (pickled by name): it trains the program as the local launcher does."""

  def __init__(self, run_program):
    self.run_program = run_program

  def __call__(self, sweep_path: str, root: str, program_index: int) -> str:
    from nn_jax.training import interrupt

    # The preemption signal stops the run at a step boundary after saving; then it goes on to
    # submitit's handler, which requeues the task.
    with interrupt.StopRequest(hand_over=(preemption_signal(),)) as stop:
      finished = self.run_program(sweep_path, pathlib.Path(root), program_index, stop)
    return "done" if finished else "stopped"


def parse_overrides(arguments: list[str]) -> dict:
  """--slurm.KEY=VALUE arguments -> {KEY: VALUE}; values are Python literals where they parse."""
  values = {}
  for argument in arguments:
    key, sep, text = argument[len("--slurm."):].partition("=")
    if not sep or not key:
      raise UserError(f"malformed {argument}: write --slurm.KEY=VALUE, e.g. --slurm.timeout_min=120")
    try:
      values[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      values[key] = text
  return values


def make_executor(launcher: str, root: pathlib.Path, parameters: dict):
  """submitit's AutoExecutor for `launcher`, its logs and pickles in ROOT/submitit/, with `parameters`
  over DEFAULTS; an unknown parameter is refused before anything is submitted."""
  try:
    executor = submitit.AutoExecutor(folder=root / "submitit" / "%j", cluster=LAUNCHERS[launcher])
  except RuntimeError as e:  # no srun: not a SLURM machine
    raise UserError(f"--launcher {launcher}: {e}; submit from the cluster's login node, or try the tasks here "
                    f"with --launcher submitit_local") from None
  try:
    executor.update_parameters(**{**DEFAULTS, **parameters})
  except (NameError, ValueError, TypeError) as e:
    message = str(e).replace("\n", "; ")
    raise UserError(f"--slurm / the sweep's slurm dict: {message}") from None
  return executor


def check(launcher: str, parameters: dict) -> None:
  """Refuses unknown parameters and a missing SLURM before anything is written into the sweep's folder."""
  with tempfile.TemporaryDirectory() as folder:  # the executor makes its folder at once
    make_executor(launcher, pathlib.Path(folder), parameters)


def submit(launcher: str, run_program, sweep_path: str, root: pathlib.Path, program_indices: list[int],
           parameters: dict, name: str):
  """Submits one array task per program (nn_jax/ablations/sweep.py: programs), each running
  `run_program(sweep_path, root, index, stop)`; returns the jobs."""
  executor = make_executor(launcher, root, {"name": name, "slurm_array_parallelism": len(program_indices),
                                            **parameters})
  count = len(program_indices)
  return executor.map_array(ProgramTask(run_program), [sweep_path] * count, [str(root.absolute())] * count,
                            program_indices)


def wait(jobs, stop=None) -> bool:
  """Waits for every job; False when `stop` was requested first (the jobs are cancelled then). A
  task's failure ends the process with its last line and its log's path."""
  while not all(job.done() for job in jobs):
    if stop is not None and stop.requested:
      for job in jobs:
        job.cancel(check=False)
      return False
    time.sleep(1)
  for job in jobs:
    try:
      job.result()
    except Exception as e:  # the task's own error, with where its log is
      raise SystemExit(f"nn_jax: sweep task {job.job_id} failed: {str(e).strip().splitlines()[-1]}; its log: "
                       f"{job.paths.stderr}") from None
  return True
