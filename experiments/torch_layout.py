"""The first PyTorch try of issue 31: compute in torch's native channels_first instead of channels_last (before
the channels_last views of labtools/keras_patches.py existed). Not adopted; kept because docs/speed.md quotes it.

    KERAS_BACKEND=torch python experiments/torch_layout.py MODEL channels_first|channels_last   (repository root)

Trains MODEL 3 epochs on 6,000 images (2,000 test images) through train.py with layout.COMPUTE_DATA_FORMAT set as
asked, and prints the epochs, the fastest after the first per step, and the test error. The sheet's test print
is replaced by a plain evaluate: train.py's print_model_error_rate would hand channels_last images to
channels_first models.

Output: its line, added to the end of results/logs/torch_channels_last.txt (where the committed runs are, one
command after the other, after their comment lines written by hand).
"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import logs  # noqa: E402
import train  # noqa: E402
from labtools import backend, layout  # noqa: E402

name, data_format = sys.argv[1], sys.argv[2]
layout.COMPUTE_DATA_FORMAT = data_format
train.print_model_error_rate = lambda model, x, y: tuple(model.evaluate(x, y, verbose=0)[:2])
settings = train.settings_for(name, epochs=3, train_limit=6000, test_limit=2000)
logs.tee("torch_channels_last.txt", append=True)
with tempfile.TemporaryDirectory() as out:
    result = train.train_and_evaluate(settings, out=out, verbose=0)
seconds = [row["seconds"] for row in result["history"]]
print(backend.describe(), name, data_format, seconds,
      f"{1000 * min(seconds[1:]) / settings.batches_per_epoch:.1f} ms/step",
      result["error_rate"], flush=True)
