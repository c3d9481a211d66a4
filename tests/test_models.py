"""The registry and the architectures: parameter counts, recipes, layouts."""

import keras
import numpy as np
import pytest

import models
from conftest import numpy_forward

# Every recipe's weights: the INSAT sheet's and tutorial's counts, the ARN report's model.summary() and course
# notebooks.
PARAMETERS = {
    "small_unnormalized": 203_434, "small": 203_434, "medium": 592_074, "large": 203_933, "large_original": 59_933,
    "mlp1": 407_050, "mlp2": 407_050, "mlp3": 535_818, "hog_mlp1": 25_802, "hog_mlp2": 50_890, "arn_cnn": 7_465,
    "pneumonia": 164_353,
    # beyond the sheets (counted here; BatchNormalization's moving means and variances included)
    "pooled": 27_114, "dropout": 27_114, "bigger": 184_586, "batchnorm": 185_258, "augmented": 185_258,
    "scheduled": 185_258, "sharp": 185_258, "deeper": 222_378, "best": 222_378,
}


def test_every_recipe_has_a_checked_count_and_every_count_a_recipe():
    assert set(PARAMETERS) == set(models.MODELS)


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_parameter_counts(name):
    model = models.build_model(name)
    assert model.count_params() == PARAMETERS[name]
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)  # BatchNormalization's statistics
    assert models.count_parameters(model)[1] == PARAMETERS[name] - frozen


def test_insat_recipes_follow_the_sheet():
    for name in ("small_unnormalized", "small", "medium", "large", "large_original"):
        recipe = models.MODELS[name]
        assert (recipe.epochs, recipe.batch_size, recipe.optimizer) == (10, 200, "adam")
        assert recipe.loss == "categorical_crossentropy" and recipe.data_format == "channels_first"
    assert models.MODELS["small_unnormalized"].normalize is False
    assert models.MODELS["small"].normalize is True


def test_sheet_functions_return_compiled_channels_first_models():
    for function, name in ((models.small_model, "small"), (models.medium_model, "medium"),
                           (models.large_model, "large")):
        model = function()
        assert model.name == name and model.compiled
        assert model.input_shape == (None, 1, 28, 28)
        assert isinstance(model.optimizer, keras.optimizers.Adam)
        assert model.loss == "categorical_crossentropy"


def test_large_original_has_the_second_pooling():
    kinds = [type(layer).__name__ for layer in models.build_model("large_original").layers]
    assert kinds.count("MaxPooling2D") == 2
    kinds = [type(layer).__name__ for layer in models.build_model("large").layers]
    assert kinds.count("MaxPooling2D") == 1


def test_unknown_model_is_a_value_error():
    with pytest.raises(ValueError, match="unknown model 'huge'; choose one of: small_unnormalized"):
        models.build_model("huge")


@pytest.mark.parametrize("name", ["small", "medium", "large_original"])
def test_relayout_keeps_the_function(name):
    """One set of weights computes, in channels_last, what the channels_first model means (by hand in NumPy)."""
    first = models.build_model(name)
    last = models.relayout(first, "channels_last")
    assert models.model_data_format(last) == "channels_last" and last.input_shape == (None, 28, 28, 1)
    assert models.compute_model(first).input_shape == last.input_shape and models.compute_model(last) is last
    images = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    expected = numpy_forward(first, images)
    np.testing.assert_allclose(last.predict(images.transpose(0, 2, 3, 1), verbose=0), expected, rtol=1e-4, atol=1e-6)
    back = models.relayout(last, "channels_first")
    assert back.to_json() == first.to_json()
    for a, b in zip(back.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_initial_weights_in_both_layouts():
    keras.utils.set_random_seed(7)
    first = models.build_model("small")
    keras.utils.set_random_seed(7)
    last = models.build_model("small", data_format="channels_last")
    for a, b in zip(first.get_weights(), last.get_weights()):
        np.testing.assert_array_equal(a, b)
