"""Variants of the ladder's `deeper` rung, each trained on the first 55,000 training images and judged on the holdout
(the last 5,000), as every ladder choice is: choice 12 in results/logs/ladder_choices.txt.

    python experiments/ladder_variants.py SEED EPOCHS OUT [changes] [train.py options]
        (from the repository root; TensorFlow; about 3.5 minutes for 10 epochs of deeper on an Intel Xeon with AMX)

Changes (none: `deeper` itself, the same weights at the start and the same epochs, checked for seed 7):
    --elastic ALPHA,SIGMA  Simard et al.'s elastic distortion (2003) in the same one nearest-pixel lookup as the
                           rotation, shift and zoom: uniform noise in [-1, 1] per pixel and axis, smoothed by a
                           Gaussian of SIGMA pixels, times ALPHA pixels (Simard: 34 and 4)
    --weight-decay WD      AdamW, decoupled weight decay WD (times the learning rate each step), in place of Adam
    --sgd                  SGD with Nesterov momentum 0.9 in place of Adam (give its peak with --learning-rate)
    --filters C1,C2,C3     the three convolutions' filters (deeper: 32,64,64)
    --extra-convs N        N more 64-filter 3x3 convolutions (batch normalised) on the 4x4 maps, after the third
    --mid-conv             a 3x3 convolution of C2 filters on the 8x8 maps, before the second pooling

train.py then runs as `python train.py --model deeper --epochs EPOCHS --seed SEED --out OUT`: its epoch lines give
the holdout's val_accuracy and val_loss; the pair is OUT/models/deeper.json + .weights.h5. train.py also prints the
test error at the end: leave it unread (grep the epoch lines) when a choice is being made. So this script writes
no log of its own in results/logs/: the committed runs' epoch lines, grepped, are at the end of ladder_choices.txt.
"""

import argparse
import dataclasses
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from labtools import console  # noqa: E402

if __name__ == "__main__":  # run as a script: the Keras backend loaded first, its start-up lines filtered out
    console.start("experiments/ladder_variants.py")

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

import models  # noqa: E402
import train  # noqa: E402
from labtools import ladder  # noqa: E402


@keras.saving.register_keras_serializable(package="ladder_variants")
class ElasticNearestAugmentation(ladder.NearestAugmentation):
    """ladder.NearestAugmentation with an elastic field added to the pixel grid before the three moves (the one
    rounding to the nearest pixel still comes after them)."""

    def __init__(self, rotation, translation, zoom, elastic=(34.0, 4.0), **kwargs):
        super().__init__(rotation, translation, zoom, **kwargs)
        self.elastic = tuple(elastic)
        self.elastic_seed = keras.random.SeedGenerator(name="elastic_seed")  # after the moves': theirs unchanged

    def output_grid(self, x, y):  # the field moves the pixel grid before the three moves
        alpha, sigma = self.elastic
        radius = int(math.ceil(3 * sigma))
        taps = [math.exp(-0.5 * (offset / sigma) ** 2) for offset in range(-radius, radius + 1)]
        taps = ops.convert_to_tensor([tap / sum(taps) for tap in taps], dtype="float32")
        noise = keras.random.uniform(ops.shape(x) + (2,), -1.0, 1.0, seed=self.elastic_seed)
        for kernel_shape in ((-1, 1, 1, 1), (1, -1, 1, 1)):  # the Gaussian is separable: rows, then columns
            kernel = ops.tile(ops.reshape(taps, kernel_shape), (1, 1, 2, 1))
            noise = ops.depthwise_conv(noise, kernel, padding="same", data_format="channels_last")
        return x + alpha * noise[..., 0], y + alpha * noise[..., 1]

    def get_config(self):
        return {**super().get_config(), "elastic": list(self.elastic)}


def conv(filters, kernel, padding="valid"):
    return [layers.Conv2D(filters, kernel, use_bias=False, padding=padding), layers.BatchNormalization(),
            layers.Activation("relu")]


def variant_network(args):
    """deeper's network (ladder.ladder_cnn with its flags), with the changes in args."""
    c1, c2, c3 = (int(count) for count in args.filters.split(","))
    if args.elastic:
        augmentation = ElasticNearestAugmentation(10 / 360, 0.1, 0.1, [float(v) for v in args.elastic.split(",")])
    else:
        augmentation = ladder.NearestAugmentation(10 / 360, 0.1, 0.1)
    stack = [keras.Input(shape=(28, 28, 1)), augmentation]
    stack += conv(c1, 5) + [layers.MaxPooling2D()]
    stack += conv(c2, 5) + (conv(c2, 3, "same") if args.mid_conv else []) + [layers.MaxPooling2D()]
    for _ in range(1 + args.extra_convs):
        stack += conv(c3, 3, "same")
    stack += [layers.Flatten(), layers.Dense(128, use_bias=False), layers.BatchNormalization(),
              layers.Activation("relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax")]
    return keras.Sequential(stack, name="deeper")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seed")
    parser.add_argument("epochs")
    parser.add_argument("out")
    parser.add_argument("--elastic", default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--sgd", action="store_true")
    parser.add_argument("--filters", default="32,64,64")
    parser.add_argument("--extra-convs", type=int, default=0)
    parser.add_argument("--mid-conv", action="store_true")
    args, rest = parser.parse_known_args(argv)
    models.MODELS["deeper"] = dataclasses.replace(models.MODELS["deeper"],
                                                  builder=lambda **flags: variant_network(args))
    if args.weight_decay is not None:  # the recipe's optimizer is built by name: swap Adam for AdamW there
        get = keras.optimizers.get
        keras.optimizers.get = lambda identifier: get(
            {"class_name": "adamw", "config": {**identifier["config"], "weight_decay": args.weight_decay}})
    if args.sgd:
        get = keras.optimizers.get
        keras.optimizers.get = lambda identifier: get(
            {"class_name": "sgd", "config": {**identifier["config"], "momentum": 0.9, "nesterov": True}})
    return train.main(["--model", "deeper", "--epochs", args.epochs, "--seed", args.seed, "--out", args.out] + rest)


if __name__ == "__main__":
    sys.exit(main())
