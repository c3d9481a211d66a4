"""Does training run, fast and deterministically, on this machine's GPU, on each Keras backend installed?

    python -m labtools.gpu_check            # results/logs/gpu_check.txt, at most about 8 minutes
    python -m labtools.gpu_check --train-limit 2000 --log /tmp/check.txt   # a rehearsal on a CPU

For each backend that is installed (TensorFlow, JAX, PyTorch), `python train.py` in a fresh process with
KERAS_BACKEND set: the sheet's `large` CNN twice with seed 7 (the same weights both times?), the ladder's `best` once
(the 2-minute target on a GPU), and two epochs of the sheet's `small` CNN. Each line of the log is one run: its
seconds from the command to its end, its seconds per epoch, its test error and a hash of its saved weights. A run
that would start after --budget seconds is skipped, and says so. This process imports no framework itself.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
PLAN = [("large", 7, None), ("large", 7, None), ("best", 7, None), ("small", 7, 2)]  # (model, seed, epochs)

def installed(name):
    return importlib.util.find_spec(name) is not None


def weights_hash(weights_path):
    """16 hex digits of the SHA-256 of a saved weights file's arrays, in the file's order."""
    digest = hashlib.sha256()
    with h5py.File(weights_path, "r") as f:
        f.visititems(lambda name, item: digest.update(item[()].tobytes()) if isinstance(item, h5py.Dataset) else None)
    return digest.hexdigest()[:16]


def one_run(name, model, seed, epochs, train_limit, out):
    """One `python train.py` on backend `name`: {device, seconds, epochs, error_rate, weights}, or {failed}."""
    command = [sys.executable, "train.py", "--model", model, "--seed", str(seed), "--out", out, "--quiet"]
    command += (["--epochs", str(epochs)] if epochs else []) + (["--train-limit", str(train_limit)] if train_limit
                                                                else [])
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "KERAS_BACKEND": name}, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        return {"failed": (result.stderr.strip().splitlines() or ["no output"])[-1]}
    run = Path(out) / "models" / (model if seed == 7 else f"{model}_seed{seed}")
    recorded = json.loads(Path(f"{run}.history.json").read_text())
    return {"device": result.stdout.splitlines()[0], "seconds": seconds,
            "epochs": [row["seconds"] for row in recorded["epochs"]], "error_rate": recorded["test"]["error_rate"],
            "weights": weights_hash(f"{run}.weights.h5")}


def make_parser():
    """The command line's parser (the docs test reads its flags)."""
    parser = argparse.ArgumentParser(prog="python -m labtools.gpu_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="the backends to try, where installed")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images only (rehearsals)")
    parser.add_argument("--budget", type=float, default=420, help="seconds after which no new run starts")
    parser.add_argument("--log", default=str(ROOT / "results" / "logs" / "gpu_check.txt"), help="the log file")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    started = time.perf_counter()
    lines = [f"# python -m labtools.gpu_check {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
             f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, Python "
             f"{platform.python_version()}", ""]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as out:
        for name in args.backends.split(","):
            if not installed(name):
                lines.append(f"{name}: not installed, skipped")
                print(lines[-1], flush=True)
                continue
            hashes = []
            for model, seed, epochs in PLAN:
                if time.perf_counter() - started > args.budget:
                    lines.append(f"{name} {model}: skipped, past the {args.budget:.0f} s budget")
                else:
                    run = one_run(name, model, seed, epochs, args.train_limit, f"{out}/{name}")
                    if "failed" in run:
                        lines.append(f"{name} {model}: FAILED: {run['failed']}")
                    else:
                        hashes += [run["weights"]] if model == "large" else []
                        target = " (target: 120)" if model == "best" else ""
                        lines.append(f"{name} {model} seed {seed}: {run['error_rate']:.2f}% error, "
                                     f"{run['seconds']:.1f} s in all{target}, epochs "
                                     f"{', '.join(f'{s:.2f}' for s in run['epochs'])} s, weights {run['weights']} "
                                     f"[{run['device']}]")
                print(lines[-1], flush=True)
            if len(hashes) == 2:
                lines.append(f"{name}: large twice with seed 7: "
                             f"{'the same weights' if hashes[0] == hashes[1] else 'DIFFERENT weights'}")
                print(lines[-1], flush=True)
    lines.append(f"\ntotal {time.perf_counter() - started:.0f} s")
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    Path(args.log).write_text("\n".join(lines) + "\n")
    print(f"{lines[-1].strip()}; wrote {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
