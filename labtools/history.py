"""What a training run leaves beside its pair: the history files, and the machine and versions it ran on.

    <out>/models/<run>.history.json   {"config": the run's settings, "epochs": [...], "test": {...}}
    <out>/models/<run>.history.csv    one row per epoch (loss, accuracy, val_loss, val_accuracy, seconds)

<run> is the model name, plus "_seed<N>" when the seed is not the sheet's 7.
"""

import csv
import json
import os
import platform
import subprocess
from pathlib import Path

from labtools import files

DEFAULT_OUT = "runs"  # the student's runs: git ignores it, so training never writes over the reference
REFERENCE = Path(__file__).resolve().parents[1] / "results"  # the committed reference: written only with --out results
DEFAULT_SEED = 7  # the sheet's seed


def run_name(name, seed=DEFAULT_SEED):
    return name if seed == DEFAULT_SEED else f"{name}_seed{seed}"


def own_or_reference(name):
    """The pair `name` (out/models/<name>) of the student's own run if there is one, else the committed reference's;
    None if neither exists."""
    for root in (Path(DEFAULT_OUT), REFERENCE):
        candidate = root / "models" / name
        if Path(f"{candidate}.json").is_file():
            return candidate
    return None


def is_own_runs(directory):
    """Whether `directory` is the student's runs folder, train.py's default (by any path)."""
    return Path(directory).resolve() == Path(DEFAULT_OUT).resolve()


def is_reference(directory):
    """Whether `directory` is the committed reference, results/ (by any path)."""
    return Path(directory).resolve() == REFERENCE


def write_history(filename, config, epochs_log, test):
    """<filename>.history.json (config, per-epoch metrics, test result) and .history.csv (per epoch), atomically."""
    with files.atomic_write(f"{filename}.history.json", f"{filename}.history.csv") as (json_path, csv_path):
        json_path.write_text(json.dumps({"config": config, "epochs": epochs_log, "test": test}, indent=2) + "\n")
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(epochs_log[0]))
            writer.writeheader()
            writer.writerows(epochs_log)


def read_history(filename):
    """The .history.json written beside a pair, or None."""
    path = Path(f"{filename}.history.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def commit_description():
    """The code's commit ("1faaab3", plus " (with uncommitted changes)" when files outside results/, which the
    scripts rewrite, differ from it), or "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def cpu_fields():
    """The first CPU's fields in /proc/cpuinfo ("model name", "flags", "cpu family", ...); {} where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            first_cpu = f.read().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in first_cpu if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def machine_description():
    """CPU model, core count and the vector extensions that matter for speed, for result tables."""
    fields = cpu_fields()
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    extensions = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
                                          ("amx_bf16", "AMX")) if flag in flags]
    if not extensions and "avx2" in flags:
        extensions = ["AVX2"]
    return f"{cpu}, {os.cpu_count()} cores" + (f" ({', '.join(extensions)})" if extensions else "")


def trained_with(config):
    """"tensorflow 2.21.0, cpu": the Keras backend and device a run's history names (None without a history).
    Histories written before there was a choice name no backend: those runs were all TensorFlow's."""
    if not config:
        return None
    versions = config.get("versions", {})
    name = versions.get("backend", "tensorflow")
    return f"{name} {versions.get(name, '?')}, {config.get('device', '?')}"
