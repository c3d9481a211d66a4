"""How tests/xrays/chest_xray/ was made (run once, from the repository's root, with a copy of the data set):

    python tests/xrays/make_fixture.py PATH/TO/chest_xray

Every 160th (train), 60th (test) or 4th (val) file of each class folder, in name order, 8 / 4 / 2 of each class,
downsized with Pillow (bilinear) and saved as JPEG quality 90 under its original name: train and test 128 x 128
RGB, as the re-saved copy stores them (RGB); val 96 x 96 grayscale, so the fixture has both modes and two sizes.
The tests never need the data set itself.
"""

import sys
from pathlib import Path

from PIL import Image

SPLITS = {"train": (160, 8, 128, "RGB"), "test": (60, 4, 128, "RGB"), "val": (4, 2, 96, "L")}


def main(source):
    target = Path(__file__).resolve().parent / "chest_xray"
    for split, (step, count, size, mode) in SPLITS.items():
        for name in ("NORMAL", "PNEUMONIA"):
            files = sorted((Path(source) / split / name).iterdir())[::step][:count]
            (target / split / name).mkdir(parents=True, exist_ok=True)
            for path in files:
                with Image.open(path) as image:
                    small = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                    small.save(target / split / name / path.name, quality=90)


if __name__ == "__main__":
    main(sys.argv[1])
