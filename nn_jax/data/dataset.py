"""What every dataset loader returns: arrays in memory plus what the trainer needs to report."""

import dataclasses
from typing import Callable

import numpy as np


def _identity(array: np.ndarray) -> np.ndarray:
  return array


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Splits as (inputs, targets) numpy arrays, already scaled for the model.

  `splits["train"]` is trained on; every other split is evaluated each epoch.
  `encode_inputs` maps raw inputs (as a user types them) to model inputs and
  `decode_outputs` maps model outputs back to the target's own units.
  """
  name: str
  splits: dict[str, tuple[np.ndarray, np.ndarray]]
  input_names: tuple[str, ...] = ()
  target_name: str = "target"
  target_unit: str = ""
  encode_inputs: Callable[[np.ndarray], np.ndarray] = _identity
  decode_outputs: Callable[[np.ndarray], np.ndarray] = _identity
  # Multiplies an error on normalized targets into the target's own units.
  target_scale: float = 1.0
  # Metrics of simple references to beat, per split, e.g. {"test": {"naive_rmse": 21.3}}.
  reference_metrics: dict = dataclasses.field(default_factory=dict)
  # How a prediction is printed: str.format with the input names and `value`; "": a generic line.
  prediction_template: str = ""
  # Time series: each split's target times, and their name, e.g. {"test": years, "name": "year"}.
  target_times: dict = dataclasses.field(default_factory=dict)

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self.splits["train"][0].shape[1:]

  def describe_prediction(self, raw_input, value: float) -> str:
    if self.prediction_template:
      return self.prediction_template.format(**dict(zip(self.input_names, raw_input)), value=value)
    inputs = ", ".join(f"{name}={v:g}" for name, v in zip(self.input_names, raw_input))
    return f"Prediction: {inputs} -> {self.target_name} {value:.1f} {self.target_unit}".rstrip()
