"""The registry and the architectures: parameter counts, recipes, layouts."""

import keras
import numpy as np
import pytest

import models
from conftest import numpy_forward
from labtools import layout

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
    assert layout.count_parameters(model)[1] == PARAMETERS[name] - frozen


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


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_each_builder_compiles_as_its_recipe_says(name):
    """A recipe's optimizer and loss, with which a loaded pair is compiled, are those its builder compiles with."""
    recipe = models.MODELS[name]
    model = models.build_model(name)
    assert model.name == name and model.compiled and model.loss == recipe.loss
    assert type(model.optimizer).__name__.lower() == recipe.optimizer


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
    last = layout.relayout(first, "channels_last")
    assert layout.model_data_format(last) == "channels_last" and last.input_shape == (None, 28, 28, 1)
    assert layout.channels_last_copy(first).input_shape == last.input_shape
    assert layout.channels_last_copy(last) is last
    images = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    expected = numpy_forward(first, images)
    np.testing.assert_allclose(last.predict(images.transpose(0, 2, 3, 1), verbose=0), expected, rtol=1e-4, atol=1e-6)
    back = layout.relayout(last, "channels_first")
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


# Each sheet model layer by layer, as the sheets' texts write them (tests/../../shared/seeds is not shipped; the
# quotes are the sheets' words). A layer is (type, what defines it): Conv2D (filters, kernel, strides, padding,
# activation); MaxPooling2D (pool size, strides, padding); Dropout (rate); Dense (units, activation); Rescaling
# (scale, offset). Parameter counts cannot see a lost Dropout, an activation or a pooling's strides.
CONV = "Conv2D"
SHEET_LAYERS = {
    # INSAT 4.b: "Une convolution de 64 filtres en 3x3 suivie d'une couche d'activation ReLU, une convolution de 32
    # filtres en 3x3 suivie d'une couche d'activation ReLU, un flatten, un dense ... 10 neurones ... softmax"
    "small": [(CONV, 64, (3, 3), (1, 1), "valid", "relu"), (CONV, 32, (3, 3), (1, 1), "valid", "relu"),
              ("Flatten",), ("Dense", 10, "softmax")],
    # INSAT 5.3: "convolution de 32 filtres en 5x5 avec un ReLU, un max-pooling de 2x2, un dropout de 0.2, un
    # flatten, un dense a 128 sorties avec un ReLU, un dense final a 10 sorties avec un softmax"
    "medium": [(CONV, 32, (5, 5), (1, 1), "valid", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
               ("Dropout", 0.2), ("Flatten",), ("Dense", 128, "relu"), ("Dense", 10, "softmax")],
    # INSAT 5.4: "convolution de 30 filtres en 5x5 ... ReLU, un max-pooling de 2x2, une convolution de 15 filtres en
    # 3x3 avec ReLU, un dropout de 0.2, un flatten, un dense de 128 ... ReLU, un dense de 50 ... ReLU, un dense de
    # 10 ... softmax"
    "large": [(CONV, 30, (5, 5), (1, 1), "valid", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
              (CONV, 15, (3, 3), (1, 1), "valid", "relu"), ("Dropout", 0.2), ("Flatten",), ("Dense", 128, "relu"),
              ("Dense", 50, "relu"), ("Dense", 10, "softmax")],
    # the tutorial the INSAT sheet follows: the same with a second 2x2 max-pooling after the 15-filter convolution
    "large_original": [(CONV, 30, (5, 5), (1, 1), "valid", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
                       (CONV, 15, (3, 3), (1, 1), "valid", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
                       ("Dropout", 0.2), ("Flatten",), ("Dense", 128, "relu"), ("Dense", 50, "relu"),
                       ("Dense", 10, "softmax")],
    # ARN report, model 1: Dense(512, input_shape=(784,), activation='sigmoid'), Dense(n_classes, 'softmax')
    "mlp1": [("Dense", 512, "sigmoid"), ("Dense", 10, "softmax")],
    # model 2: the same with Dropout(0.5) after the hidden layer
    "mlp2": [("Dense", 512, "sigmoid"), ("Dropout", 0.5), ("Dense", 10, "softmax")],
    # model 3: Dense 512 sigmoid, Dropout 0.5, Dense 256 relu, Dropout 0.5, Dense softmax
    "mlp3": [("Dense", 512, "sigmoid"), ("Dropout", 0.5), ("Dense", 256, "relu"), ("Dropout", 0.5),
             ("Dense", 10, "softmax")],
    # HOG models 1 and 2: Dense(64, input_shape=(hog_size,), activation='relu'), Dropout(0.5), Dense softmax
    "hog_mlp1": [("Dense", 64, "relu"), ("Dropout", 0.5), ("Dense", 10, "softmax")],
    "hog_mlp2": [("Dense", 64, "relu"), ("Dropout", 0.5), ("Dense", 10, "softmax")],
    # the ARN course's MNIST CNN: Conv2D 9 5x5 relu (same), MaxPool 2x2, Conv2D 9 5x5 relu (same), MaxPool 2x2,
    # Conv2D 16 3x3 relu (same), MaxPool 2x2, Flatten (144), Dense 25 relu, Dense 10 softmax
    "arn_cnn": [(CONV, 9, (5, 5), (1, 1), "same", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
                (CONV, 9, (5, 5), (1, 1), "same", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
                (CONV, 16, (3, 3), (1, 1), "same", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"),
                ("Flatten",), ("Dense", 25, "relu"), ("Dense", 10, "softmax")],
    # the ARN pneumonia notebook: five blocks of Conv2D 3x3 relu same + MaxPool 2x2 (8, 16, 32, 64, 128 filters),
    # Flatten, Dense 32 relu, Dense 16 relu, Dense 1 sigmoid; the pixels' /255 inside the model (Rescaling), as the
    # notebook's images come 0..255 from image_dataset_from_directory
    "pneumonia": [("Rescaling", 1 / 255, 0.0)] + [
        layer for filters in (8, 16, 32, 64, 128)
        for layer in ((CONV, filters, (3, 3), (1, 1), "same", "relu"), ("MaxPooling2D", (2, 2), (2, 2), "valid"))
    ] + [("Flatten",), ("Dense", 32, "relu"), ("Dense", 16, "relu"), ("Dense", 1, "sigmoid")],
}
SHEET_INPUTS = {"small": (1, 28, 28), "medium": (1, 28, 28), "large": (1, 28, 28), "large_original": (1, 28, 28),
                "mlp1": (784,), "mlp2": (784,), "mlp3": (784,), "hog_mlp1": (392,), "hog_mlp2": (784,),
                "arn_cnn": (28, 28, 1), "pneumonia": (128, 128, 1)}


def described(layer):
    """What defines a layer, in SHEET_LAYERS's terms."""
    kind = type(layer).__name__
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if kind == "Conv2D":
        return (kind, layer.filters, tuple(layer.kernel_size), tuple(layer.strides), layer.padding, activation)
    if kind == "MaxPooling2D":
        return (kind, tuple(layer.pool_size), tuple(layer.strides), layer.padding)
    if kind == "Dropout":
        return (kind, layer.rate)
    if kind == "Dense":
        return (kind, layer.units, activation)
    if kind == "Rescaling":
        return (kind, layer.scale, layer.offset)
    return (kind,)


@pytest.mark.parametrize("name", list(SHEET_LAYERS) + ["small_unnormalized"])
def test_each_sheet_model_is_the_sheets_text_layer_by_layer(name):
    model = models.build_model(name)
    expected = SHEET_LAYERS["small" if name == "small_unnormalized" else name]
    assert [described(layer) for layer in model.layers] == expected
    assert model.input_shape[1:] == SHEET_INPUTS["small" if name == "small_unnormalized" else name]
