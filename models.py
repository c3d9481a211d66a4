"""The models of both lab sheets, each written as its sheet writes it (its layers, then its compile), and one
registry, MODELS, of how each is trained and what its sheet reports.

INSAT TP3: small_model(), medium_model(), large_model() in channels_first, as the sheet sets
K.set_image_data_format('channels_first'); adam, categorical_crossentropy, 10 epochs, batch 200. The data_format
argument lets train.py build the same model in channels_last, which computes faster (labtools/layout.py).
HEIG-VD ARN PW4: the MLPs on raw pixels and on HOG features (RMSprop), the course's CNN, the chest X-ray CNN.
Beyond the sheets: the ladder's rungs (labtools/ladder.py), after them in MODELS.
"""

from labtools import keras_patches  # isort: skip  (labtools first: it sets KERAS_BACKEND, which Keras reads once)
import keras
from keras import layers

from labtools import ladder
from labtools.recipes import ARN, INSAT, Recipe

# TensorFlow runs channels_first convolutions on a CPU only where its oneDNN rewrite is on (Linux, AVX-512 VNNI);
# elsewhere the sheet's models could not fit. They run as channels_last ones between two transposes: same numbers.
keras_patches.channels_first_convolutions()

SHEET_FORMAT = "channels_first"  # INSAT: K.set_image_data_format('channels_first')
num_classes = 10


def image_shape(data_format, size=28):
    return (1, size, size) if data_format == "channels_first" else (size, size, 1)


# ----------------------------------------------------------------------------
# INSAT TP3


def small_model(data_format=SHEET_FORMAT):
    """4.b: Conv 64 3x3 relu, Conv 32 3x3 relu, Flatten, Dense softmax (203,434 weights)."""
    # create model
    model = keras.Sequential(name="small")
    model.add(keras.Input(shape=image_shape(data_format)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu", data_format=data_format))
    model.add(layers.Conv2D(32, (3, 3), activation="relu", data_format=data_format))
    model.add(layers.Flatten(data_format=data_format))
    model.add(layers.Dense(num_classes, activation="softmax"))
    # compile model
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def medium_model(data_format=SHEET_FORMAT):
    """5.3: Conv 32 5x5 relu, MaxPool 2x2, Dropout 0.2, Flatten, Dense 128 relu, Dense softmax (592,074)."""
    model = keras.Sequential(name="medium")
    model.add(keras.Input(shape=image_shape(data_format)))
    model.add(layers.Conv2D(32, (5, 5), activation="relu", data_format=data_format))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Dropout(0.2))
    model.add(layers.Flatten(data_format=data_format))
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def large_model(data_format=SHEET_FORMAT, second_pooling=False):
    """5.4: Conv 30 5x5, MaxPool 2x2, Conv 15 3x3, Dropout 0.2, Flatten, Dense 128, Dense 50, Dense softmax
    (203,933 weights). second_pooling=True adds the tutorial's MaxPool 2x2 after the 15-filter convolution (59,933):
    the tutorial the sheet follows has it, the sheet's text leaves it out."""
    model = keras.Sequential(name="large_original" if second_pooling else "large")
    model.add(keras.Input(shape=image_shape(data_format)))
    model.add(layers.Conv2D(30, (5, 5), activation="relu", data_format=data_format))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Conv2D(15, (3, 3), activation="relu", data_format=data_format))
    if second_pooling:
        model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Dropout(0.2))
    model.add(layers.Flatten(data_format=data_format))
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.Dense(50, activation="relu"))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


# ----------------------------------------------------------------------------
# HEIG-VD ARN PW4


def mlp1_model():
    """Model 1: Dense 512 sigmoid, Dense softmax on the 784 raw pixels (407,050 weights), RMSprop."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(layers.Dense(512, activation="sigmoid"))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def mlp2_model():
    """Model 2: model 1 with Dropout 0.5 after the hidden layer (407,050 weights)."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(layers.Dense(512, activation="sigmoid"))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def mlp3_model():
    """Model 3: Dense 512 sigmoid, Dropout 0.5, Dense 256 relu, Dropout 0.5, Dense softmax (535,818 weights)."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(layers.Dense(512, activation="sigmoid"))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(256, activation="relu"))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def hog_mlp_model(hog_size):
    """HOG models 1 and 2: Dense 64 relu, Dropout 0.5, Dense softmax on hog_size features (392: 25,802 weights)."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(hog_size,)))
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def arn_cnn_model(data_format="channels_last"):
    """The ARN course's MNIST CNN (2022): three Conv + MaxPool blocks, Dense 25 (7,465 weights), RMSprop."""
    model = keras.Sequential(name="arn_cnn")
    model.add(keras.Input(shape=image_shape(data_format)))
    model.add(layers.Conv2D(9, (5, 5), activation="relu", padding="same", data_format=data_format))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Conv2D(9, (5, 5), activation="relu", padding="same", data_format=data_format))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Conv2D(16, (3, 3), activation="relu", padding="same", data_format=data_format))
    model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Flatten(data_format=data_format))  # 3 x 3 x 16 = 144
    model.add(layers.Dense(25, activation="relu"))
    model.add(layers.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def pneumonia_model(data_format="channels_last", image_size=128):
    """The ARN chest X-ray CNN: five Conv 3x3 relu + MaxPool 2x2 blocks (8 to 128 filters), Dense 32, 16, 1 sigmoid
    (164,353 weights at 128x128); Adam 1e-3, binary cross-entropy. Rescaling (no weights) puts the 0..255 pixels of
    image_dataset_from_directory into 0..1 inside the model, so a saved pair takes raw images."""
    model = keras.Sequential(name="pneumonia")
    model.add(keras.Input(shape=image_shape(data_format, size=image_size)))
    model.add(layers.Rescaling(1 / 255))
    for filters in (8, 16, 32, 64, 128):
        model.add(layers.Conv2D(filters, (3, 3), activation="relu", padding="same", data_format=data_format))
        model.add(layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format))
    model.add(layers.Flatten(data_format=data_format))  # 4 x 4 x 128 = 2048
    model.add(layers.Dense(32, activation="relu"))
    model.add(layers.Dense(16, activation="relu"))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=["accuracy"])
    return model


# ----------------------------------------------------------------------------
# The registry: every model by name, how its sheet trains it, what its sheet reports

ARN_MLP_REFERENCE = (2.0, 2.7)  # ARN reports: raw-pixel MLPs about 97.3-98.0% test accuracy
SHEETS = [
    Recipe("small_unnormalized", small_model, INSAT, "small CNN, pixels 0..255 (sheet part 4)", epochs=10,
           batch_size=200, optimizer="adam", normalize=False, reference_error=(2.40, 2.40),
           reference_source="sheet's log: val_accuracy 0.9760 after 10 epochs",
           note="the sheet's figure is one run on one machine, so it carries the seed spread too; without "
                "normalisation the loss starts near 0.6 instead of 0.2 and the error rate stays about 1 point above "
                "the normalised `small`, as the sheet's question 5.2 expects"),
    Recipe("small", small_model, INSAT, "small CNN, pixels /255 (sheet part 5.2)", epochs=10, batch_size=200,
           optimizer="adam"),
    Recipe("medium", medium_model, INSAT, "medium CNN (sheet part 5.3)", epochs=10, batch_size=200, optimizer="adam",
           reference_error=(1.03, 1.03), reference_source="tutorial the sheet follows"),
    Recipe("large", large_model, INSAT, "large CNN as the sheet writes it (sheet part 5.4)", epochs=10,
           batch_size=200, optimizer="adam", reference_error=(0.82, 0.89),
           reference_source="tutorial, whose large CNN has a 2nd pooling the sheet omits",
           note="the sheet's text drops the tutorial's second max-pooling, so this model has 203,933 weights instead "
                "of 59,933 (`large_original`); the reference is the tutorial's, for `large_original`. The extra "
                "weights sit in the first dense layer and do not change the error rate beyond the seed spread"),
    Recipe("large_original", large_model, INSAT, "large CNN of the tutorial: 2nd max-pooling after the 15-filter "
           "conv", epochs=10, batch_size=200, optimizer="adam", builder_kwargs={"second_pooling": True},
           reference_error=(0.82, 0.89), reference_source="tutorial the sheet follows"),
    Recipe("mlp1", mlp1_model, ARN, "MLP 512 sigmoid on raw pixels", epochs=10, batch_size=128, optimizer="rmsprop",
           input_kind="flat", data_format=None, reference_error=ARN_MLP_REFERENCE, reference_loss=0.0904,
           reference_source="ARN reports",
           note="the ARN report gives only a test loss for this model (0.0904), which ours matches; the accuracy "
                "range pools the reports' raw-pixel MLPs, and mlp1 is the smallest of them: no dropout, 10 epochs"),
    Recipe("mlp2", mlp2_model, ARN, "MLP 512 sigmoid + dropout 0.5 on raw pixels", epochs=20, batch_size=32,
           optimizer="rmsprop", input_kind="flat", data_format=None, reference_error=(2.02, 2.02),
           reference_loss=0.0712, reference_source="ARN report: test accuracy 0.9798"),
    Recipe("mlp3", mlp3_model, ARN, "MLP 512 sigmoid, 256 relu, dropout 0.5 on raw pixels", epochs=30,
           batch_size=128, optimizer="rmsprop", input_kind="flat", data_format=None, reference_error=ARN_MLP_REFERENCE,
           reference_loss=0.0703, reference_source="ARN reports"),
    Recipe("hog_mlp1", hog_mlp_model, ARN, "MLP 64 relu on HOG, 8 orientations, 4 px/cell (392 features)",
           epochs=50, batch_size=128, optimizer="rmsprop", input_kind="hog", data_format=None,
           builder_kwargs={"hog_size": 392}, input_options={"orientations": 8, "pixels_per_cell": 4},
           reference_error=(2.2, 2.2), reference_loss=0.0939, reference_source="ARN reports: HOG MLP about 97.8%"),
    Recipe("hog_mlp2", hog_mlp_model, ARN, "MLP 64 relu on HOG, 16 orientations, 4 px/cell (784 features)",
           epochs=20, batch_size=128, optimizer="rmsprop", input_kind="hog", data_format=None,
           builder_kwargs={"hog_size": 784}, input_options={"orientations": 16, "pixels_per_cell": 4},
           reference_error=(2.2, 2.2), reference_loss=0.0738, reference_source="ARN reports: HOG MLP about 97.8%"),
    Recipe("arn_cnn", arn_cnn_model, ARN, "the ARN course's MNIST CNN", epochs=10, batch_size=128, optimizer="rmsprop",
           data_format="channels_last", reference_error=(1.2, 1.2), reference_source="ARN course notebook: about 98.8%",
           note="with 7,465 weights this CNN varies most between seeds (see *over seeds*): the seed-7 run lands "
                "above the course's figure, but the runs spread on both sides of it and their mean lies within "
                "one sd of it"),
    Recipe("pneumonia", pneumonia_model, ARN, "chest X-ray CNN, normal vs pneumonia (needs --data-dir)", epochs=5,
           batch_size=64, optimizer="adam", learning_rate=1e-3, input_kind="xray", data_format="channels_last",
           loss="binary_crossentropy", reference_error=(20.0, 24.0),
           reference_source="ARN students: about 76-80% test accuracy"),
]
MODELS = {**{recipe.name: recipe for recipe in SHEETS}, **ladder.rungs()}  # then beyond the sheets: the ladder


def build_model(name, data_format=None):
    """The compiled model of recipe `name` (MODELS), in the recipe's layout unless data_format is given."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name].build(data_format)
