"""Recipe: how one model of the registry (models.MODELS) is built and trained, and what its sheet reports.

models.py writes each model's layers and compile as its sheet does; a Recipe adds what a run and the report need
to know about it: epochs and batch size, the pixel scale and the inputs it takes, its validation data, the error
rate its sheet reports.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import keras

INSAT = "INSAT TP3"
ARN = "HEIG-VD ARN PW4"
BEYOND = "beyond the sheets"


@dataclass(frozen=True)
class Recipe:
    """How the sheet trains one model, and what result it reports."""

    name: str
    builder: Callable[..., keras.Model]  # returns the model compiled as its sheet compiles it
    sheet: str  # INSAT, ARN or BEYOND
    description: str
    epochs: int
    batch_size: int
    optimizer: str  # what the builder compiles with (a test checks): a loaded pair is compiled with it
    normalize: bool = True  # pixels /255
    input_kind: str = "image"  # image (N,1,28,28) | flat (N,784) | hog | xray
    data_format: Optional[str] = "channels_first"  # the layout of the saved JSON (None: no convolution)
    loss: str = "categorical_crossentropy"  # as the builder compiles it
    learning_rate: Optional[float] = None  # None: the optimizer's Keras default; with a schedule: its peak
    # "cosine": a linear warm-up over warmup_fraction of the steps to learning_rate, then a cosine decay to 0
    schedule: Optional[str] = None
    warmup_fraction: float = 0.0  # of all training steps
    # "test": the sheet's validation data; "holdout": the last 5,000 training images, trained on the other 55,000;
    # "none": all 60,000 trained on, nothing validated
    validation: str = "test"
    builder_kwargs: dict = field(default_factory=dict)
    input_options: dict = field(default_factory=dict)  # for data.prepare_inputs (HOG parameters)
    reference_error: Optional[Tuple[float, float]] = None  # test error rate in %, (low, high)
    reference_source: str = ""
    reference_loss: Optional[float] = None  # test loss the sheet reports (the ARN report's "Test score")
    note: str = ""  # why a result may differ from its reference (written into RESULTS.md)

    def build(self, data_format=None):
        """The compiled model, in the recipe's layout unless data_format is given (one with no convolution has
        none)."""
        kwargs = dict(self.builder_kwargs)
        if self.data_format is not None:
            kwargs["data_format"] = data_format or self.data_format
        model = self.builder(**kwargs)
        model.name = self.name  # the saved JSON names its recipe (small and small_unnormalized share a builder)
        return model

    def compile(self, model, total_steps=None, gradient_accumulation_steps=None, learning_rate=None):
        """Compile model with a fresh optimizer of the recipe and its loss, plus accuracy.

        total_steps: a recipe with a schedule gets it over these training steps; without them (a pair loaded to be
        evaluated) the optimizer keeps a constant learning rate, which evaluation never uses. learning_rate: in
        place of the recipe's (the peak of its schedule). gradient_accumulation_steps: the optimizer steps once per
        this many batches, with their mean gradient.
        """
        recipe = self if learning_rate is None else dataclasses.replace(self, learning_rate=learning_rate)
        config = {"gradient_accumulation_steps": gradient_accumulation_steps} if gradient_accumulation_steps else {}
        if recipe.schedule is not None and total_steps:
            config["learning_rate"] = recipe.learning_rate_schedule(total_steps)
        elif recipe.learning_rate is not None:
            config["learning_rate"] = recipe.learning_rate
        optimizer = keras.optimizers.get({"class_name": recipe.optimizer, "config": config})
        model.compile(optimizer=optimizer, loss=recipe.loss, metrics=["accuracy"])
        return model

    def learning_rate_schedule(self, total_steps):
        """The recipe's schedule over total_steps (Keras's own CosineDecay, whose warm-up is linear)."""
        if self.schedule != "cosine":
            raise ValueError(f"{self.name}: unknown schedule {self.schedule!r}")
        warmup_steps = int(self.warmup_fraction * total_steps)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=self.learning_rate / 25 if warmup_steps else self.learning_rate,
            decay_steps=total_steps - warmup_steps, warmup_target=self.learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps, alpha=0.0)
