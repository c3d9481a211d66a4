"""Beyond the sheets: every rung of the ladder builds and trains, its augmentation follows the seed, its schedule
warms up and decays, and it never validates on the test set."""

import keras
import numpy as np
import pytest

import data
import models
import train
from labtools import ladder, recipes, runs


def test_the_ladder_starts_at_the_sheets_small_cnn_and_adds_one_recipe_per_rung():
    assert ladder.LADDER[0] == "small" and len(ladder.LADDER) == len(set(ladder.LADDER)) >= 6
    for name in ladder.LADDER[1:]:
        recipe = models.MODELS[name]
        assert recipe.sheet == recipes.BEYOND and recipe.normalize
        # choices on the holdout; the last rung trains on all 60,000 once they are made; never the test set
        assert recipe.validation == ("none" if name == ladder.LADDER[-1] else "holdout")
    flags = [models.MODELS[name].builder_kwargs for name in ladder.LADDER[1:]]
    for before, after in zip(flags, flags[1:]):  # a rung keeps every idea of the rung before it
        assert {key: value for key, value in before.items() if key != "name"}.items() <= after.items()


AUGMENTATION = (keras.layers.RandomRotation, keras.layers.RandomTranslation, keras.layers.RandomZoom,
                ladder.NearestAugmentation)


def augmented_images(seed, images, name="augmented"):
    """The rung's preprocessing layers applied in training mode, after keras.utils.set_random_seed."""
    keras.utils.set_random_seed(seed)
    model = models.build_model(name)
    augmentation = [layer for layer in model.layers if isinstance(layer, AUGMENTATION)]
    assert len(augmentation) == (1 if models.MODELS[name].builder_kwargs.get("interpolation") == "nearest" else 3)
    for layer in augmentation:
        images = layer(images, training=True)
    return keras.ops.convert_to_numpy(images)


def test_nearest_augmentation_is_keras_three_layers_by_nearest_pixel_in_one_lookup():
    """The same images as RandomRotation, RandomTranslation and RandomZoom with interpolation="nearest" applied
    in turn, bit for bit, so that the rungs trained with those three layers keep their numbers."""
    (_, _), (test_images, _), _ = data.get_data_mnist(normalize=True)
    images = data.prepare_inputs(test_images[:400], "image", "channels_last")
    options = {"fill_mode": "constant", "interpolation": "nearest", "data_format": "channels_last"}
    for seed in (7, 8):
        keras.utils.set_random_seed(seed)
        three = [keras.layers.RandomRotation(10 / 360, **options), keras.layers.RandomTranslation(0.1, 0.1, **options),
                 keras.layers.RandomZoom(0.1, **options)]
        keras.utils.set_random_seed(seed)
        one = ladder.NearestAugmentation(10 / 360, 0.1, 0.1)
        for batch in (images[:200], images[200:]):  # two batches: the seed generators move on alike
            expected = batch
            for layer in three:
                expected = layer(expected, training=True)
            moved = keras.ops.convert_to_numpy(one(batch, training=True))
            np.testing.assert_array_equal(moved, keras.ops.convert_to_numpy(expected))
            assert not np.array_equal(moved, batch)
    keras.utils.set_random_seed(7)  # each layer takes its seeds when it is made
    first = ladder.NearestAugmentation(10 / 360, 0.1, 0.1, data_format="channels_first")
    flipped = keras.ops.convert_to_numpy(first(images[:200].transpose(0, 3, 1, 2), training=True))
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(flipped.transpose(0, 2, 3, 1), keras.ops.convert_to_numpy(
        ladder.NearestAugmentation(10 / 360, 0.1, 0.1)(images[:200], training=True)))


def test_augmentation_is_the_same_for_the_same_seed_and_changes_the_images():
    images = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    first, again, other = augmented_images(7, images), augmented_images(7, images), augmented_images(8, images)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and not np.allclose(first, images, atol=0.05)
    model = models.build_model("augmented")
    np.testing.assert_array_equal(model.layers[0](images, training=False), images)  # inference sees the image


def test_bilinear_augmentation_blurs_the_digits_and_nearest_keeps_them_sharp():
    (_, _), (test_images, _), _ = data.get_data_mnist(normalize=True)
    images = data.prepare_inputs(test_images[:500], "image", "channels_last")  # as the ladder computes
    saturated = (images > 0.9).mean()
    blurred = augmented_images(7, images, "augmented")
    sharp = augmented_images(7, images, "sharp")
    assert (blurred > 0.9).mean() < 0.5 * saturated  # three bilinear resamplings: most strokes lose their peak
    assert (sharp > 0.9).mean() == pytest.approx(saturated, rel=0.1)
    assert np.isin(sharp, np.append(images, 0)).all()  # nearest: every pixel comes from the image or the fill
    np.testing.assert_array_equal(sharp, augmented_images(7, images, "sharp"))


def test_the_schedule_warms_up_to_its_peak_then_decays_to_zero():
    recipe = models.MODELS["scheduled"]
    schedule = recipe.learning_rate_schedule(total_steps=1000)
    rates = [float(schedule(step)) for step in (0, 50, 100, 550, 1000)]
    assert rates[0] == pytest.approx(recipe.learning_rate / 25)
    assert rates[0] < rates[1] < rates[2] == pytest.approx(recipe.learning_rate)  # 10% of the steps: warm-up
    assert rates[3] == pytest.approx(recipe.learning_rate / 2, rel=1e-3) and rates[4] == pytest.approx(0, abs=1e-9)
    settings = train.settings_for("scheduled", train_limit=1000)  # train.py compiles it over the run's steps
    compiled = runs.build_model(settings, recipe)
    assert float(compiled.optimizer.learning_rate) == pytest.approx(rates[0])  # step 0 of the schedule
    augmented = runs.build_model(train.settings_for("augmented", train_limit=1000), models.MODELS["augmented"])
    assert float(augmented.optimizer.learning_rate) == pytest.approx(1e-3)


def test_the_holdout_is_the_last_5000_training_images():
    (X_train, y_train), _, _ = data.get_data_mnist(True)
    (X_fit, y_fit), (X_valid, y_valid) = runs.holdout_split(X_train, y_train)
    assert len(X_fit) == 55_000 and np.array_equal(X_valid, X_train[-5000:]) and np.array_equal(y_fit, y_train[:-5000])
