"""What the chest X-ray tree's val/ folder (16 radiographs) can tell, from the committed pneumonia histories.

    python experiments/xray_val_folder.py

Output: results/logs/xray_val_folder.txt (overwritten; the committed one is that command's, as it printed it). Needs
no data set: it reads results/models/pneumonia*.history.json.
"""

import json
import math
import sys
from pathlib import Path

import logs

ROOT = Path(__file__).resolve().parents[1]


def wilson(successes, trials, z=1.96):
    """The 95% Wilson score interval of a proportion: where the accuracy on all such images plausibly lies."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def main():
    runs = sorted((ROOT / "results" / "models").glob("pneumonia*.history.json"))
    if not runs:
        sys.exit("xray_val_folder.py: no results/models/pneumonia*.history.json; train: python train.py --model "
                 "pneumonia --data-dir DIR --seeds 7,8,9")
    logs.tee("xray_val_folder.txt")
    print("$ python experiments/xray_val_folder.py")
    for path in runs:
        saved = json.loads(path.read_text())
        val = [row["val_accuracy"] for row in saved["epochs"]]
        train = [row["accuracy"] for row in saved["epochs"]]
        test = saved["test"]["accuracy"]
        images = saved["test"]["metrics"]["images"]
        best = max(range(len(val)), key=lambda i: val[i])
        print(f"{path.name[:-len('.history.json')]:16s} validation on {saved['config']['validation']}: val_accuracy "
              f"by epoch {', '.join(f'{v:.4f}' for v in val)}; training accuracy {', '.join(f'{t:.4f}' for t in train)}; "
              f"best val epoch {best + 1} of {len(val)}; test accuracy after the last epoch {test:.4f} on {images} "
              "images")
    print("One val image is 1/16 = 6.25 points of val_accuracy. 95% Wilson intervals of an accuracy of 75%:")
    for trials in (16, 624):
        low, high = wilson(round(0.75 * trials), trials)
        print(f"  on {trials:3d} images: {low:.1%} to {high:.1%} (width {100 * (high - low):.1f} points)")


if __name__ == "__main__":
    main()
