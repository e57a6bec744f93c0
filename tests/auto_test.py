"""What per-backend choices become, decided once per run."""

from conftest import experiment

from nn_jax.models import cnn
from nn_jax.training import auto


def test_cnn_on_cpu_is_fused_in_microbatches_of_50_and_xla_whole_batch_elsewhere():
  cpu = auto.resolve(experiment("cnn_mnist"), "cpu")
  assert cpu.model.conv_impl == "fused" and cpu.microbatch_size == cnn.FUSED_MICROBATCH
  gpu = auto.resolve(experiment("cnn_mnist"), "gpu")
  assert gpu.model.conv_impl == "xla" and gpu.microbatch_size == 200
  assert auto.resolve(experiment("cnn_mnist", "microbatch_size=100"), "cpu").microbatch_size == 100


def test_batch_norm_always_runs_xla_s_convolution():
  assert auto.resolve(experiment("cnn_mnist:bn_dropout"), "cpu").model.conv_impl == "xla"


def test_recurrence_and_dispatch_per_backend():
  lstm, gru = (auto.resolve(experiment(f"recurrent_series:{cell}"), "cpu") for cell in ("lstm", "gru"))
  assert lstm.model.recurrence == gru.model.recurrence == "custom_vjp"  # measured faster on CPU
  assert lstm.steps_per_dispatch == auto.STEPS_PER_DISPATCH["cpu"]
  lstm, gru = (auto.resolve(experiment(f"recurrent_series:{cell}"), "gpu") for cell in ("lstm", "gru"))
  assert lstm.model.recurrence == "optimized" and gru.model.recurrence == "scan"  # custom_vjp not measured there
  assert auto.resolve(experiment("house_mlp"), "cpu", full_batch=True).steps_per_dispatch == 2000
  assert auto.resolve(experiment("fnn_binary", "steps_per_dispatch=3"), "gpu").steps_per_dispatch == 3


def test_data_goes_to_the_device_when_it_fits():
  assert auto.resolve(experiment("fnn_binary"), "cpu", data_bytes=1000).data_on_device == "true"
  assert auto.resolve(experiment("fnn_binary"), "cpu", data_bytes=1 << 60).data_on_device == "false"
  assert auto.resolve(experiment("fnn_binary", "data_on_device=false"), "cpu", data_bytes=1).data_on_device == "false"


def test_microbatch_size_is_the_nearest_divisor():
  assert auto.microbatch_size(200, 50) == 50
  assert auto.microbatch_size(256, 50) == 64  # 5 microbatches would be nearer, but 5 does not divide 256
  assert auto.microbatch_size(30, 50) == 30 and auto.microbatch_size(200, 0) == 200


def test_xla_s_convolution_is_dispatched_a_step_at_a_time_on_cpu_only():
  assert auto.resolve(experiment("cnn_mnist:bn_dropout"), "cpu").steps_per_dispatch == 1
  assert auto.resolve(experiment("cnn_mnist", "model.conv_impl=xla"), "cpu").steps_per_dispatch == 1
  assert auto.resolve(experiment("cnn_mnist:bn_dropout"), "gpu").steps_per_dispatch == auto.STEPS_PER_DISPATCH["gpu"]
