"""bench.py's FLOP count, bf16 training, and MirroredStrategy on two logical CPUs."""

import json


import bench
import models
import train
from conftest import run_script


def test_training_flops_of_the_small_cnn_from_its_layer_shapes():
    model = models.build_model("small", data_format="channels_last")
    # conv1 26*26*64*9 MACs (forward + weight gradients), conv2 24*24*32*9*64 and dense 18432*10 (+ input gradients)
    expected = 2 * (26 * 26 * 64 * 9 * 2 + 24 * 24 * 32 * 576 * 3 + 18432 * 10 * 3)
    assert bench.training_flops_per_image(model) == expected
    assert round(expected / 1e6, 1) == 66.4
    channels_first = models.build_model("small")
    assert bench.training_flops_per_image(channels_first) == expected


def test_bf16_trains_and_saves_a_float32_pair(tmp_path):
    result = train.train_and_evaluate("small", out=tmp_path, epochs=1, train_limit=1000, test_limit=300,
                                      precision="bf16", verbose=0)
    assert result["error_rate"] < 85
    config = json.loads((tmp_path / "models" / "small.json").read_text())
    policies = {layer["config"]["dtype"]["config"]["name"] for layer in config["config"]["layers"]
                if isinstance(layer["config"].get("dtype"), dict)}
    assert policies == {"float32"}
    assert all(w.dtype == "float32" for w in result["model"].get_weights())
    assert models.build_model("small").dtype_policy.name == "float32"  # the global policy is restored


DISTRIBUTED = """
import json, sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import train
result = train.train_and_evaluate("medium", out=sys.argv[1], epochs=1, train_limit=4000, test_limit=500,
                                  batch_size=100, distribute=True, verbose=0)
config = json.load(open(f"{result['filename']}.history.json"))["config"]
print(json.dumps({"replicas": config["replicas"], "batch_size": config["batch_size"],
                  "error_rate": result["error_rate"]}))
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    result = run_script("-c", DISTRIBUTED, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["replicas"] == 2 and outcome["batch_size"] == 200  # global batch = per replica x replicas
    assert outcome["error_rate"] < 50  # 20 steps of the medium CNN: far better than chance (90%)


def test_bench_writes_its_report(tmp_path):
    out = tmp_path / "BENCH.md"
    result = run_script("bench.py", "--models", "mlp1", "--epochs", "1", "--train-limit", "500", "--no-extras",
                        "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "| mlp1 | - | fp32 |" in text and "float32 matmul peak measured in this run" in text
