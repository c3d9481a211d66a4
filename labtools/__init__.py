"""What teachers and maintainers need behind the lab sheets' five files (data.py, models.py, train.py, evaluate.py,
persistence.py), which import from here; nothing here imports them.

Importing the package chooses the Keras backend where KERAS_BACKEND is unset (backend.py), and does nothing else.

    backend        which framework Keras runs on, the device, determinism, data parallelism, versions
    keras_patches  the changes made to Keras's functions: each checked, each said where it is called
    console        the scripts' command line: one-line errors, --help with every default, quiet start-up
    errors         the project's errors, each a one-line message that names the file or flag
    files          atomic writes, the project's cache folder
    mnist_file     datasets/mnist.npz, checked against the real MNIST
    batches        the training batches, in TensorFlow's shuffled order on every backend
    feature_cache  features (HOG) computed in parallel and cached
    recipes        Recipe: how a model of the registry (models.MODELS) trains and what its sheet reports
    layout         one set of weights in either data format (channels_first, channels_last)
    runs           a training run's settings, precision, slices, devices, checkpoints to resume from
    history        the files a run leaves beside its pair, the machine and versions
    ladder         beyond the sheets: the ladder's rungs, their augmentation and schedule
    xrays          the chest X-ray tree (ARN part 2): files, class weights, scores, figures
    saved_models   model files any Keras wrote: this project's pairs, Keras 2 pairs, .keras and .h5 files
    pixel_scale    which pixel scale (0..1 or 0..255) a model from elsewhere was trained on
    grading        evaluating folders of saved models (a teacher's desk), the evaluation cache
    report         RESULTS.md, its tables, the CSV, the README blocks
    plots          the figures
    inside         inside a CNN: filters, feature maps, attribution maps and their deletion check (visualize.py)
    bench          speed against the machine's peak (python -m labtools.bench)
    gpu_check      training on a GPU, on each backend (python -m labtools.gpu_check)
"""

from labtools import backend  # noqa: F401  (chooses the Keras backend before any module here imports Keras)
