"""Beyond the sheets: a ladder from the INSAT sheet's small CNN, one idea per rung, each measured (docs/ladder.md).

Each rung adds one idea to the rung before it, starting from the sheet's `small` (pixels /255); models.MODELS
holds them after the sheets' models. Channels_last: no sheet fixes their layout. Choices (learning rate, schedule,
resampling, the third convolution, epochs) were made on the last 5,000 training images (validation="holdout"),
never on the test set: results/logs/ladder_choices.txt.
"""

import keras
from keras import layers, ops

from labtools.recipes import BEYOND, Recipe

# (name, what it adds, builder flags, epochs, other recipe fields): each rung keeps the flags and fields of the
# rungs before it
IDEAS = [
    ("pooled", "2x2 max-pooling after each convolution", {"pooling": True}, 10, {}),
    ("dropout", "dropout 0.25 after each pooling", {"dropout": True}, 10, {}),
    ("bigger", "the classic MNIST CNN: conv 32 5x5, conv 64 5x5, dense 128, dropout 0.5 before the output only",
     {"bigger": True}, 10, {}),
    ("batchnorm", "batch normalisation after each convolution and the dense layer", {"batchnorm": True}, 10, {}),
    ("augmented", "random rotation (10 degrees), translation (10%) and zoom (10%) of the training images",
     {"augment": True}, 10, {}),
    ("scheduled", "learning rate: warm-up to 3e-3 over 10% of the steps, then cosine decay to 0",
     {}, 10, {"schedule": "cosine", "learning_rate": 3e-3, "warmup_fraction": 0.1}),
    ("sharp", "augmentation by nearest pixel: Keras's default bilinear resampling, three times, blurred the "
     "training digits", {"interpolation": "nearest"}, 10, {}),
    ("deeper", "a third convolution: 64 filters 3x3 on the 4x4 maps after the second pooling, batch normalised",
     {"deeper": True}, 10, {}),
    ("best", "all 60,000 training images (the 5,000 held out for the choices come back) and 12 epochs", {}, 12,
     {"validation": "none"}),
]
LADDER = ["small"] + [name for name, *_ in IDEAS]  # the rungs in order; the first is the sheet's
# The ladder's target: the last rung's test error rate, mean of seeds 7, 8, 9, at most LADDER_GOAL_ERROR (%; 99.70%
# accuracy, the best published single CNNs' level), each run trained in under LADDER_TIME_LIMIT minutes on 2 CPU
# cores. evaluate.py draws both in plots/ladder.png and says whether they are met.
LADDER_GOAL_ERROR = 0.30
LADDER_TIME_LIMIT = 10


def rungs():
    """{name: Recipe} of the rungs after `small`, in order, each with every idea of the rungs before it."""
    recipes, flags, fields = {}, {}, {"validation": "holdout"}
    for name, adds, new_flags, epochs, new_fields in IDEAS:
        flags, fields = {**flags, **new_flags}, {**fields, **new_fields}
        recipes[name] = Recipe(name, ladder_cnn, BEYOND, adds, epochs=epochs, batch_size=200, optimizer="adam",
                               data_format="channels_last", builder_kwargs={**flags, "name": name}, **fields)
    return recipes


def ladder_cnn(pooling=False, dropout=False, bigger=False, batchnorm=False, augment=False, interpolation="bilinear",
               deeper=False, num_classes=10, data_format="channels_last", name="ladder"):
    """The small CNN with the ladder's ideas switched on, each one on top of the ones before it.

    pooling: a 2x2 max-pooling after each convolution (5x fewer FLOPs; small shifts matter less).
    dropout: Dropout 0.25 after each pooling.
    bigger: TensorFlow's classic MNIST CNN in place of the small one: Conv 32 5x5, Conv 64 5x5 (valid), a
        hidden Dense 128, and its dropout: 0.5 before the output only.
    batchnorm: BatchNormalization after each convolution and the hidden dense layer (before the relu; those
        layers then need no bias).
    augment: random rotation (up to 10 degrees), translation (10% of the image) and zoom (10%), active only in
        training, seeded like the rest (keras.utils.set_random_seed): the same seed gives the same images.
    interpolation: how the augmentation resamples: Keras's default "bilinear" averages neighbouring pixels,
        "nearest" moves them (NearestAugmentation); what that does to the digits: docs/ladder.md.
    deeper: a third convolution, 64 filters 3x3 with "same" padding, on the 4x4 maps after the second pooling
        (chosen on the holdout: docs/ladder.md).
    """
    filters, kernel = ((32, 64), (5, 5)) if bigger else ((64, 32), (3, 3))
    stack = [keras.Input(shape=(1, 28, 28) if data_format == "channels_first" else (28, 28, 1))]
    if augment and interpolation == "nearest":  # the same three moves, composed into one lookup
        stack.append(NearestAugmentation(10 / 360, 0.1, 0.1, data_format=data_format))
    elif augment:  # Keras's own preprocessing layers; empty corners are filled with the background (0)
        options = {"fill_mode": "constant", "interpolation": interpolation, "data_format": data_format}
        moves = [layers.RandomRotation(10 / 360, **options), layers.RandomTranslation(0.1, 0.1, **options),
                 layers.RandomZoom(0.1, **options)]
        for move in moves:
            move.supports_jit = True  # see NearestAugmentation: else JAX runs the whole training step op by op
        stack += moves
    for count in filters:
        stack += _conv_relu(count, kernel, batchnorm, data_format)
        if pooling:
            stack.append(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
        if dropout and not bigger:
            stack.append(layers.Dropout(0.25))
    if deeper:
        stack += _conv_relu(64, (3, 3), batchnorm, data_format, padding="same")
    stack.append(layers.Flatten(data_format=data_format))
    if bigger:
        stack += [layers.Dense(128, use_bias=not batchnorm)]
        stack += [layers.BatchNormalization(), layers.Activation("relu")] if batchnorm else [layers.Activation("relu")]
        if dropout:
            stack.append(layers.Dropout(0.5))
    stack.append(layers.Dense(num_classes, activation="softmax"))
    model = keras.Sequential(stack, name=name)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


@keras.saving.register_keras_serializable(package="mnist_labs")
class NearestAugmentation(layers.Layer):
    """Keras's RandomRotation, RandomTranslation and RandomZoom with nearest-pixel resampling, as one lookup.

    The three layers in a row resample each training image three times. By nearest pixel a resampling only moves
    pixels, so the three moves compose into one: this layer draws the rotation, shift and zoom that the three
    Keras layers would draw (their own code and seed generators, in their order), follows each output pixel back
    through the three transforms as TensorFlow's ImageProjectiveTransformV3 kernel does (float32 coordinates,
    rounded half away from zero, the background 0 outside), and reads the input image once. The images are the
    three layers' on TensorFlow, bit for bit (tests/test_ladder.py), so the rungs trained before it keep their
    numbers; on JAX and PyTorch one gather replaces three interpolation kernels, and the model's training step
    compiles (what that saves: docs/ladder.md). Active in training only, like the layers it stands for.
    """

    def __init__(self, rotation, translation, zoom, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.translation, self.zoom, self.data_format = rotation, translation, zoom, data_format
        options = {"fill_mode": "constant", "interpolation": "nearest", "data_format": data_format}
        # built in the order Keras applied them: each takes its seed from keras.utils.set_random_seed in turn
        self.moves = [layers.RandomRotation(rotation, **options),
                      layers.RandomTranslation(translation, translation, **options), layers.RandomZoom(zoom, **options)]
        for move in self.moves:
            # Keras marks these layers unfit for XLA (their resampling kernel, on TensorFlow), and then compiles no
            # model holding one: on JAX a whole training step ran op by op. Only their random draws run here.
            move.supports_jit = True

    def build(self, input_shape):
        for move in self.moves:  # no weights: only their seed generators, made with them
            move.build(input_shape)

    def transforms(self, images):
        """Each move's (batch, 8) transform, in TensorFlow's convention: output pixel (x, y) -> input point."""
        rotate, shift, zoom = self.moves
        rotation = rotate.get_random_transformation(images, training=True)["rotation_matrix"]
        translation = shift._get_translation_matrix(shift.get_random_transformation(images)["translations"])
        zooms = zoom.get_random_transformation(images, training=True)
        zooms = ops.cast(ops.concatenate([zooms["width_zoom"], zooms["height_zoom"]], axis=1), "float32")
        height, width = images.shape[2:] if self.data_format == "channels_first" else images.shape[1:3]
        return rotation, translation, zoom._get_zoom_matrix(zooms, height, width)

    def call(self, images, training=False):
        images = ops.cast(images, self.compute_dtype)
        if not training:
            return images
        transforms = self.transforms(images)
        if self.data_format == "channels_first":
            images = ops.transpose(images, (0, 2, 3, 1))
        batch, height, width, channels = ops.shape(images)
        rows, columns = ops.meshgrid(ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"),
                                     indexing="ij")
        x, y = self.output_grid(*(ops.broadcast_to(grid[None], (batch, height, width)) for grid in (columns, rows)))
        inside = ops.ones((batch, height, width), dtype="bool")
        for transform in reversed(transforms):  # from the last move's output back to the input
            transform = ops.cast(transform, "float32")[:, :, None, None]
            x, y = (_round_half_away(transform[:, row] * x + transform[:, row + 1] * y + transform[:, row + 2])
                    for row in (0, 3))
            inside = inside & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        pixel = ops.reshape(ops.cast(ops.where(inside, y * width + x, 0), "int32"), (batch, height * width, 1))
        moved = ops.take_along_axis(ops.reshape(images, (batch, height * width, channels)),
                                    ops.broadcast_to(pixel, (batch, height * width, channels)), axis=1)
        moved = ops.where(ops.reshape(inside, (batch, height * width, 1)), moved, ops.zeros_like(moved))
        moved = ops.reshape(moved, (batch, height, width, channels))
        return ops.transpose(moved, (0, 3, 1, 2)) if self.data_format == "channels_first" else moved

    def output_grid(self, x, y):
        """The output pixels' (x, y), before they are followed back through the moves: a subclass may move them
        (experiments/ladder_variants.py adds an elastic field)."""
        return x, y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "translation": self.translation, "zoom": self.zoom,
                "data_format": self.data_format}


def _round_half_away(value):
    """std::round, as TensorFlow's kernel rounds a coordinate to its nearest pixel (ops.round goes half to even)."""
    magnitude = ops.abs(value)
    whole = ops.floor(magnitude)
    return ops.sign(value) * (whole + ops.cast(magnitude - whole >= 0.5, value.dtype))


def _conv_relu(filters, kernel_size, batchnorm, data_format, padding="valid"):
    if not batchnorm:
        return [layers.Conv2D(filters, kernel_size, activation="relu", padding=padding, data_format=data_format)]
    axis = 1 if data_format == "channels_first" else -1
    return [layers.Conv2D(filters, kernel_size, use_bias=False, padding=padding, data_format=data_format),
            layers.BatchNormalization(axis=axis), layers.Activation("relu")]
