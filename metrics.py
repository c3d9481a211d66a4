"""The sheet's score lines, and the scores the scripts print: MNIST error rate, chest X-ray precision and recall.

`print_model_error_rate` is the INSAT sheet's function (part 4.c): it evaluates a compiled model on the test
set and prints "Model score" and "Model error rate".
"""

import numpy as np

import models


def print_model_error_rate(model, X_test, y_test):
    """The sheet's function; also returns (test loss, test accuracy).

    A channels_first model with (N, 1, 28, 28) images computes through its channels_last twin (same weights,
    same function, see models.relayout): TensorFlow cannot run channels_first convolutions on most CPUs.
    """
    if models.model_data_format(model) == "channels_first" and np.ndim(X_test) == 4:
        model, X_test = models.compute_model(model), np.asarray(X_test).transpose(0, 2, 3, 1)
    # Final evaluation of the model
    scores = model.evaluate(X_test, y_test, verbose=0)
    print_score(scores[1])
    return float(scores[0]), float(scores[1])


def print_score(accuracy):
    print("Model score : %.2f%%" % (accuracy * 100))
    print("Model error rate : %.2f%%" % (100 - accuracy * 100))


def loss_and_accuracy(probabilities, y_true):
    """model.evaluate's two numbers (categorical cross-entropy as Keras clips it, accuracy) from predictions."""
    clipped = np.clip(probabilities / probabilities.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(np.sum(y_true * np.log(clipped), axis=1)))
    return loss, float(np.mean(y_true.argmax(axis=1) == probabilities.argmax(axis=1)))


def xray_metrics(model, images, labels, threshold=0.5, batch_size=64):
    """Accuracy, precision, recall, F1 (PNEUMONIA positive) and the confusion matrix of images and their labels."""
    predicted = np.asarray(model.predict(images, batch_size=batch_size, verbose=0)).reshape(-1) >= threshold
    labels = np.asarray(labels).reshape(-1) >= 0.5
    true_positive = int(np.sum(labels & predicted))
    false_positive = int(np.sum(~labels & predicted))
    false_negative = int(np.sum(labels & ~predicted))
    true_negative = int(np.sum(~labels & ~predicted))
    precision = true_positive / max(true_positive + false_positive, 1)
    recall = true_positive / max(true_positive + false_negative, 1)
    return {
        "images": int(len(labels)), "accuracy": float(np.mean(labels == predicted)), "precision": precision,
        "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        # rows: true NORMAL, PNEUMONIA; columns: predicted NORMAL, PNEUMONIA
        "confusion_matrix": [[true_negative, false_positive], [false_negative, true_positive]],
    }


def print_xray_metrics(metrics):
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    print(f"Precision : {metrics['precision']:.4f}  Recall : {metrics['recall']:.4f}  F1 : {metrics['f1']:.4f}"
          f"  ({metrics['images']} test images, PNEUMONIA positive)")
    print("Confusion matrix (rows true, columns predicted):")
    print(f"             NORMAL  PNEUMONIA\n  NORMAL    {tn:8d} {fp:10d}\n  PNEUMONIA {fn:8d} {tp:10d}")
