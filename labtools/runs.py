"""A training run of train.py beyond the sheet's own steps: its settings (the recipe's, with the flags'
overrides, checked before anything trains), its precision, gradient slices and devices, the record of each epoch,
and the checkpoint it resumes from after an interruption.
"""

import contextlib
import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from labtools import backend, batches, files, history, layout, mnist_file, xrays
from labtools.errors import UsageError

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}
# At most this many batches per call of Keras's compiled training step: the same arithmetic with fewer trips
# through Python between batches (timed in docs/speed.md). Progress bars and on_batch_end callbacks then update once
# per call. Not under --distribute: Keras 3.15's multi-step call fails inside TensorFlow's MirroredStrategy.
STEPS_PER_CALL = 50
HOLDOUT_IMAGES = 5000  # validation images held out of the training set where choices are made on data
# What a --resume must share with the interrupted run: all that decides its numbers.
RESUME_KEYS = ("model", "seed", "epochs", "batch_size", "normalize", "learning_rate", "precision", "slice_size",
               "train_images", "test_images", "data_dir")


@dataclass(frozen=True)
class Settings:
    """Everything that decides a training run: its recipe's values with the flags' overrides, and where it runs.

    Build it with Settings.of, which fills in the recipe and checks every value (UsageError for what cannot work);
    the run's history records it as it is, plus its training time.
    """

    model: str
    seed: int
    epochs: int
    batch_size: int  # the global batch: --batch-size times the replicas under --distribute
    normalize: bool  # pixels /255
    optimizer: str
    learning_rate: Optional[float]  # None: Keras's default for the optimizer; with a schedule: its peak
    input_kind: str  # image, flat, hog, xray
    validation: str  # test, holdout or none; the chest X-rays: val (the tree's val/ folder) or test
    train_images: int
    test_images: int
    train_limit: Optional[int]
    test_limit: Optional[int]
    data_dir: Optional[str]  # the chest X-ray tree
    compute_data_format: Optional[str]  # None: no convolution
    precision: str
    slice_size: Optional[int]  # None: whole batches
    steps_per_call: int
    device: str  # where it trains: cpu or gpu
    replicas: int
    resume: bool
    machine: str
    versions: dict

    @classmethod
    def of(cls, recipe, *, seed=history.DEFAULT_SEED, epochs=None, batch_size=None, normalize=None,
           learning_rate=None, precision="fp32", slice_size=None, device="auto", distribute=False, data_dir=None,
           train_limit=None, test_limit=None, resume=False, steps_per_call=STEPS_PER_CALL):
        """The settings of a run of `recipe`; the other arguments override it (None: the recipe's).

        train_limit / test_limit keep only the first MNIST images (quick trials, tests). precision "bf16"
        computes in bfloat16 and still saves float32 weights. slice_size: compute each batch's gradient over
        slices of this many images, one optimizer step per batch. device: auto, cpu or gpu. distribute: train
        data-parallel on every GPU (backend.replicas_scope), batch_size per replica. resume: continue from the
        run's checkpoint. steps_per_call: at most this many batches per compiled Keras call.
        """
        name = recipe.name
        epochs = recipe.epochs if epochs is None else epochs
        batch_size = recipe.batch_size if batch_size is None else batch_size
        if epochs < 1 or batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if learning_rate is not None and not learning_rate > 0:
            raise UsageError(f"--learning-rate {learning_rate}: give a positive number, e.g. 0.001")
        if precision not in PRECISIONS:
            raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        if slice_size is not None and slice_size < 0:
            raise UsageError(f"--slice-size {slice_size}: give a number of images, or 0 for whole batches")
        validation = recipe.validation
        if recipe.input_kind == "xray":
            if data_dir is None:
                raise UsageError(f"--model {name} needs --data-dir DIR; {xrays.XRAY_LAYOUT}")
            train_images, test_images = xrays.count_xrays(data_dir)
            # the tree's val/ folder, as the ARN notebook validates on; without one, the test images, as the sheets
            validation = "val" if "val" in xrays.xray_split_dirs(data_dir) else "test"
        else:
            train_images = mnist_file.TRAIN_IMAGES - (HOLDOUT_IMAGES if recipe.validation == "holdout" else 0)
            train_images = min(train_limit or train_images, train_images)
            test_images = min(test_limit or mnist_file.TEST_IMAGES, mnist_file.TEST_IMAGES)
        slice_size = slice_size if slice_size and slice_size < batch_size else None
        if slice_size:  # Keras averages the slices' gradients: equal slices of whole batches
            if distribute or recipe.input_kind == "xray":
                raise UsageError("--slice-size works for the MNIST recipes, without --distribute; drop one of them")
            if batch_size % slice_size or train_images % batch_size:
                raise UsageError(f"--slice-size {slice_size}: slices must split every batch evenly: choose a "
                                 f"divisor of the batch size {batch_size}, and a --train-limit that is a multiple "
                                 f"of it ({train_images:,} images now)")
            if recipe.builder_kwargs.get("batchnorm"):
                raise UsageError(f"--slice-size: {name} has BatchNormalization, whose statistics slicing would "
                                 "change; train it in whole batches")
        device = backend.resolve_device(device)
        replicas = backend.replica_count(device) if distribute else 1
        batch_size *= replicas
        steps_per_epoch = batches.steps_per_epoch(train_images, slice_size or batch_size)
        batches_per_call_possible = backend.steps_per_call_allowed() and not distribute
        return cls(model=name, seed=seed, epochs=epochs, batch_size=batch_size,
                   normalize=recipe.normalize if normalize is None else normalize, optimizer=recipe.optimizer,
                   learning_rate=recipe.learning_rate if learning_rate is None else learning_rate,
                   input_kind=recipe.input_kind, validation=validation, train_images=train_images,
                   test_images=test_images, train_limit=train_limit, test_limit=test_limit,
                   data_dir=str(data_dir) if data_dir else None,
                   compute_data_format=None if recipe.data_format is None else layout.COMPUTE_DATA_FORMAT,
                   precision=precision, slice_size=slice_size,
                   steps_per_call=steps_per_execution(steps_per_epoch, steps_per_call)
                   if batches_per_call_possible else 1,
                   device=device, replicas=replicas, resume=resume, machine=history.machine_description(),
                   versions=backend.versions())

    @property
    def batches_per_epoch(self):
        return batches.steps_per_epoch(self.train_images, self.batch_size)

    @property
    def steps_per_epoch(self):
        """Training steps per epoch: batches, or slices of batches with --slice-size."""
        return batches.steps_per_epoch(self.train_images, self.slice_size or self.batch_size)


def holdout_split(X_train, y_train, images=HOLDOUT_IMAGES):
    """(X, y) for training and the last `images` training images for validation, as MNIST's own distribution
    (mnist.pkl.gz) kept its last 10,000 for validation: the test set then decides nothing (the ladder's rungs)."""
    return (X_train[:-images], y_train[:-images]), (X_train[-images:], y_train[-images:])


def steps_per_execution(steps_per_epoch, most=STEPS_PER_CALL):
    """The largest divisor of steps_per_epoch up to `most`.

    Keras runs whole calls: one that crossed the end of an epoch of our one-stream-for-all-epochs
    data would move batches into the next epoch (the epoch's log and checkpoint would be wrong).
    """
    return max(d for d in range(1, min(most, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def check_writable(directory):
    """Fail before training, not after, when the results cannot be written."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--out {directory.parent if directory.name == 'models' else directory}: "
                         f"cannot write there ({error.strerror}); choose another directory") from None


def devices(settings):
    """A context in which the run builds and trains: on its device, data-parallel over its replicas."""
    stack = contextlib.ExitStack()
    stack.enter_context(backend.on_device(settings.device))
    if settings.replicas > 1:
        stack.enter_context(backend.replicas_scope(settings.device))
    return stack


def build_model(settings, recipe):
    """The recipe's compiled model for this run, in the layout and precision it computes in (the global policy
    restored after), compiled again where the run changes its optimizer: the recipe's schedule over the run's steps,
    --learning-rate, --slice-size; at most settings.steps_per_call batches per compiled call.

    With slices, Keras's optimizer accumulates the gradients of batch_size / slice_size steps of one slice each and
    applies their mean once: the whole batch's mean gradient, one optimizer step per batch, as the sheets train;
    only the order of the float additions differs, and each Dropout layer draws its masks slice by slice.
    """
    accumulate = settings.batch_size // settings.slice_size if settings.slice_size else None
    keras.mixed_precision.set_global_policy(PRECISIONS[settings.precision])
    try:
        model = recipe.build(data_format=settings.compute_data_format)
        if recipe.schedule or accumulate or settings.learning_rate != recipe.learning_rate:
            recipe.compile(model, total_steps=settings.epochs * settings.batches_per_epoch,
                           gradient_accumulation_steps=accumulate, learning_rate=settings.learning_rate)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # later models (and the saved one) are float32
    model.steps_per_execution = settings.steps_per_call
    return model


class EpochRecorder(keras.callbacks.Callback):
    """After every epoch: its metrics and seconds into epochs_log, then the run's state into the checkpoint."""

    def __init__(self, epochs_log, checkpoint):
        super().__init__()
        self.epochs_log, self.checkpoint = epochs_log, checkpoint

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        if not all(np.isfinite(value) for value in logs.values()):
            return  # TerminateOnNaN stops the run; the last checkpoint stays the last good epoch
        self.epochs_log.append({"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                                "seconds": round(seconds, 3)})
        self.checkpoint.save(self.model, self.epochs_log)


class Checkpoint:
    """The state of a run after its last finished epoch: every variable of the model (weights, random-seed
    states) and of its optimizer, the epochs' history, and the settings (RESUME_KEYS) it was started with."""

    def __init__(self, path, settings):
        self.path = Path(path)
        self.settings = {key: getattr(settings, key) for key in RESUME_KEYS}

    def save(self, model, epochs_log):
        arrays = {f"model_{i}": v.numpy() for i, v in enumerate(model.variables)}
        arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
        arrays.update({f"random_{key}": value for key, value in backend.random_state().items()})
        state = json.dumps({"settings": self.settings, "epochs": epochs_log})
        files.write_npz(self.path, compress=False, state=np.array(state), **arrays)

    def restore(self, model):
        """Load the state into model (its optimizer built first); returns the epochs' history."""
        if not self.path.is_file():
            raise UsageError(f"--resume: no checkpoint {self.path}; train without --resume")
        try:
            with np.load(self.path, allow_pickle=False) as f:
                state = json.loads(str(f["state"]))
                if state["settings"] != self.settings:
                    different = sorted(k for k in self.settings if state["settings"].get(k) != self.settings[k])
                    raise UsageError(f"--resume: {self.path} was made with other settings ({', '.join(different)}); "
                                     "use the same flags, or train without --resume to start again")
                model.optimizer.build(model.trainable_variables)
                for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
                    for i, variable in enumerate(variables):
                        variable.assign(f[f"{prefix}_{i}"])
                backend.set_random_state({key[len("random_"):]: f[key] for key in f.files if key.startswith("random_")})
        except UsageError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise UsageError(f"--resume: {self.path} is damaged ({error}); train without --resume") from None
        return state["epochs"]

    def delete(self):
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only if no other run's checkpoint is there
