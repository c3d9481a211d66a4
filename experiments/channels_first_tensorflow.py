"""The sheet's channels_first CNNs against their channels_last copies on a CPU: 60 training steps, three times.

    python experiments/channels_first_tensorflow.py
    TF_ENABLE_ONEDNN_OPTS=0 python experiments/channels_first_tensorflow.py --append

Output: results/logs/channels_first_tensorflow.txt, a run's lines added to its end with --append. The committed
one: its comment lines and a blank line by hand, then those two runs, then the first command with --append again
on backend.py of 4797e2a, before issue 38 ("keras's own"; labtools/keras_patches.py makes the change since).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import data  # noqa: E402
import keras  # noqa: E402
import logs  # noqa: E402
import models  # noqa: E402
from labtools import keras_patches  # noqa: E402

(X, y), _, _ = data.get_data_mnist(True)
X, y = X[:12000], y[:12000]
patched = "patched" if keras_patches.channels_first_convolutions() else "keras's own"
logs.tee("channels_first_tensorflow.txt", append="--append" in sys.argv)
for name in ("large", "small"):
    for layout in ("channels_first", "channels_last"):
        keras.utils.set_random_seed(7)
        model = models.build_model(name, data_format=layout)
        x = X if layout == "channels_first" else X.transpose(0, 2, 3, 1)
        model.fit(x[:400], y[:400], batch_size=200, epochs=1, verbose=0)  # warm-up: tracing
        times = []
        for _ in range(3):
            started = time.perf_counter()
            model.fit(x, y, batch_size=200, epochs=1, verbose=0)
            times.append(time.perf_counter() - started)
        print(os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), patched, name, layout, "60 steps:",
              " ".join(f"{seconds:.2f}" for seconds in times), flush=True)
