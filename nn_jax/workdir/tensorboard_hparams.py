"""TensorBoard's HParams dashboard: each run's hyperparameters and final metrics, a sweep's experiment.

A finished run writes WORKDIR/tensorboard/hparams.*: a session start with its hyperparameters (its
config's keys that say what it trains), its final metrics as scalars tagged "final/SPLIT/NAME", and a
session end. A sweep writes ROOT/hparams.*: the experiment, i.e. which keys vary (with a searched
key's range or a grid axis's values) and which metrics to show, so `tensorboard --logdir ROOT` compares
its runs in the table and parallel-coordinates views. Written with tensorboardX's protos: no TensorFlow.
"""

import json
import pathlib
import time

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import api_pb2, plugin_hparams_pb2
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

PLUGIN = "hparams"
EXPERIMENT_TAG = "_hparams_/experiment"
START_TAG, END_TAG = "_hparams_/session_start_info", "_hparams_/session_end_info"


def value(v):
  """A config value as HParams holds one: a number, a string or a bool (a tuple as its JSON text)."""
  return v if isinstance(v, (bool, int, float, str)) else json.dumps(v if not isinstance(v, tuple) else list(v))


def _summary(tag: str, data: plugin_hparams_pb2.HParamsPluginData) -> Summary:
  metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN,
                                                                   content=data.SerializeToString()))
  return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])


def _write(path: pathlib.Path, summaries: list[tuple[int, Summary]]) -> None:
  for old in path.parent.glob(path.name + ".*"):  # one file of each: a rerun replaces it
    old.unlink()
  writer = EventsWriter(str(path))
  for step, summary in summaries:
    writer.write_event(Event(wall_time=time.time(), step=step, summary=summary))
  writer.close()


def write_run(workdir: pathlib.Path, hparams: dict, final: dict, epochs: int) -> None:
  """The run's session: `hparams` {key: value}, `final` {split: {name: value}} (summary.json's)."""
  start = plugin_hparams_pb2.SessionStartInfo(start_time_secs=time.time())
  for key, v in hparams.items():
    if v is None:
      continue
    v = value(v)
    if isinstance(v, bool):
      start.hparams[key].bool_value = v
    elif isinstance(v, str):
      start.hparams[key].string_value = v
    else:
      start.hparams[key].number_value = float(v)
  scalars = Summary(value=[Summary.Value(tag=f"final/{split}/{name}", simple_value=float(v))
                           for split, metrics in final.items() for name, v in metrics.items()])
  end = plugin_hparams_pb2.SessionEndInfo(status=api_pb2.Status.Value("STATUS_SUCCESS"), end_time_secs=time.time())
  (workdir / "tensorboard").mkdir(exist_ok=True)
  _write(workdir / "tensorboard" / "hparams", [
      (0, _summary(START_TAG, plugin_hparams_pb2.HParamsPluginData(session_start_info=start))),
      (epochs, scalars),
      (epochs, _summary(END_TAG, plugin_hparams_pb2.HParamsPluginData(session_end_info=end)))])


def write_experiment(root: pathlib.Path, hparams: dict, metric_tags: list[str]) -> None:
  """ROOT/hparams.*: the columns of the dashboard. `hparams` {key: ("interval", low, high) or
  ("values", [value, ...])}; `metric_tags` e.g. ["final/test/accuracy"]."""
  infos = []
  for key, (kind, *domain) in hparams.items():
    info = api_pb2.HParamInfo(name=key)
    if kind == "interval":
      info.type = api_pb2.DataType.Value("DATA_TYPE_FLOAT64")
      info.domain_interval.min_value, info.domain_interval.max_value = float(domain[0]), float(domain[1])
    else:
      values = [value(v) for v in domain[0]]
      kinds = {bool: "BOOL", str: "STRING"}
      types = {kinds.get(type(v), "FLOAT64") for v in values}
      info.type = api_pb2.DataType.Value(f"DATA_TYPE_{types.pop() if len(types) == 1 else 'STRING'}")
      info.domain_discrete.extend(values if info.type != api_pb2.DataType.Value("DATA_TYPE_STRING")
                                  else [str(v) for v in values])
    infos.append(info)
  experiment = api_pb2.Experiment(hparam_infos=infos, time_created_secs=time.time(),
                                  metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag))
                                                for tag in metric_tags])
  _write(root / "hparams", [(0, _summary(EXPERIMENT_TAG, plugin_hparams_pb2.HParamsPluginData(
      experiment=experiment)))])
