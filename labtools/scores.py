"""A model's scores from its outputs: the sheet's two lines, MNIST's loss and accuracy computed from predictions
(evaluate.py draws its figures from the same predictions), how sure a model is (output margins), and the chest
X-rays' precision, recall, F1, ROC AUC and confusion matrix."""

import numpy as np


def print_score(accuracy):
    print("Model score : %.2f%%" % (accuracy * 100))
    print("Model error rate : %.2f%%" % (100 - accuracy * 100))


def as_probabilities(outputs, tolerance=1e-3):
    """(probabilities, logits): outputs as they are when each row is a probability distribution (a softmax at
    the end), else their softmax, with logits True (a model whose last layer gives logits scores by its largest
    output either way; only its loss needs the softmax)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.min() >= -tolerance and np.allclose(outputs.sum(axis=1), 1, atol=tolerance):
        return outputs.astype(np.float32), False
    exp = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32), True


def output_margins(probabilities):
    """Per image, how much likelier the model finds its first choice than its second, in nats: ln p1 - ln p2
    (inf where the softmax saturated: p2 = 0 in float32, a margin above about 100)."""
    second, first = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)[:, -2:].T
    with np.errstate(divide="ignore"):
        return np.log(first) - np.log(second)


def loss_and_accuracy(probabilities, y_true):
    """model.evaluate's two numbers (categorical cross-entropy as Keras clips it, accuracy) from predictions."""
    clipped = np.clip(probabilities / probabilities.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(np.sum(y_true * np.log(clipped), axis=1)))
    return loss, float(np.mean(y_true.argmax(axis=1) == probabilities.argmax(axis=1)))



def xray_probabilities(model, images, batch_size=64):
    """The model's PNEUMONIA probability per image, (N,) float64."""
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64).reshape(-1)


def xray_metrics(model, images, labels, threshold=0.5, batch_size=64):
    """Accuracy, precision, recall, F1 (PNEUMONIA positive), ROC AUC and the confusion matrix of images and their
    labels (xray_scores of the model's probabilities)."""
    return xray_scores(xray_probabilities(model, images, batch_size), labels, threshold)


def xray_scores(probabilities, labels, threshold=0.5):
    """The scores of PNEUMONIA probabilities against labels (0 NORMAL, 1 PNEUMONIA).

    An image is called PNEUMONIA when its probability is above threshold, as Keras's binary accuracy does, so
    "accuracy" equals model.evaluate's. precision = TP / (TP + FP), recall = TP / (TP + FN) (0 when undefined),
    F1 their harmonic mean; roc_auc does not depend on the threshold (None when a class is missing).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) >= 0.5
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} probabilities for {len(labels)} labels")
    predicted = probabilities > threshold
    true_positive = int(np.sum(labels & predicted))
    false_positive = int(np.sum(~labels & predicted))
    false_negative = int(np.sum(labels & ~predicted))
    true_negative = int(np.sum(~labels & ~predicted))
    precision = true_positive / max(true_positive + false_positive, 1)
    recall = true_positive / max(true_positive + false_negative, 1)
    return {
        "images": int(len(labels)), "threshold": float(threshold), "accuracy": float(np.mean(labels == predicted)),
        "precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "specificity": true_negative / max(true_negative + false_positive, 1), "roc_auc": roc_auc(probabilities, labels),
        # rows: true NORMAL, PNEUMONIA; columns: predicted NORMAL, PNEUMONIA
        "confusion_matrix": [[true_negative, false_positive], [false_negative, true_positive]],
    }


def roc_auc(probabilities, labels):
    """The area under the ROC curve: the chance that a random PNEUMONIA image gets a higher probability than a
    random NORMAL one, ties counting one half (the Mann-Whitney statistic); None without both classes."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) >= 0.5
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    order = np.argsort(probabilities, kind="mergesort")
    ranks = np.empty(len(probabilities))
    ranks[order] = np.arange(1, len(probabilities) + 1)
    values, inverse = np.unique(probabilities, return_inverse=True)  # tied probabilities share their mean rank
    ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(probabilities, labels):
    """(false positive rates, true positive rates, thresholds) of every threshold, from (0, 0) to (1, 1): at
    thresholds[i] an image is called PNEUMONIA when its probability is at least that."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) >= 0.5
    order = np.argsort(-probabilities, kind="mergesort")
    scores, hits = probabilities[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives, false_positives = np.cumsum(hits)[last_of_tie], np.cumsum(~hits)[last_of_tie]
    fpr = np.r_[0.0, false_positives / max(int((~labels).sum()), 1)]
    tpr = np.r_[0.0, true_positives / max(int(labels.sum()), 1)]
    return fpr, tpr, np.r_[np.inf, scores[last_of_tie]]


def print_xray_metrics(metrics):
    """The scores a student reports, after the sheet's two lines: precision, recall, F1, ROC AUC, the matrix."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    auc = "-" if metrics.get("roc_auc") is None else f"{metrics['roc_auc']:.4f}"
    print(f"Precision : {metrics['precision']:.4f}  Recall : {metrics['recall']:.4f}  F1 : {metrics['f1']:.4f}"
          f"  ROC AUC : {auc}  ({metrics['images']} test images, PNEUMONIA positive, "
          f"threshold {metrics.get('threshold', 0.5):g})")
    print("Confusion matrix (rows true, columns predicted):")
    print(f"             NORMAL  PNEUMONIA\n  NORMAL    {tn:8d} {fp:10d}\n  PNEUMONIA {fn:8d} {tp:10d}")
