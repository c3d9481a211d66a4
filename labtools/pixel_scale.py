"""Which pixel scale, 0..1 or 0..255, a model from elsewhere was trained on, when nothing recorded it: the rule of
`evaluate.py --normalize auto` (docs/usage.md), from the model's outputs on the same test images fed on each
scale. grading.choose_pixel_scale runs the model; choose() decides."""

import numpy as np

from labtools import scores

AUTO_SCALE_IMAGES = 1000  # test images scored on each pixel scale when nothing recorded the model's
CLEARLY_MORE_RIGHT = 0.02  # right on 2% more of them on one scale: that scale, outright
MARGIN_SPLIT = 0.5  # nats: the median image's margin on 0..1 from which the model was trained on 0..1
CLOSE_MARGIN = 3.0  # within a factor 3 of MARGIN_SPLIT, either way, the note says the margin is close to the split
SCALE_FREE = 2.0  # margins on 0..255 at most twice those on 0..1: the outputs do not follow the pixels' size
PIXELS = {True: "0..1", False: "0..255"}  # normalize: the pixel scale


def choose(probabilities, labels):
    """(normalize, note): the pixel scale, 0..1 or 0..255, that a model was trained on, for a model whose training
    nobody recorded (a model from elsewhere), from its outputs on the same test images fed on each scale:
    probabilities {True: on 0..1, False: on 0..255}, each (N, 10); labels (N, 10) one-hot.

    1. If it gets clearly more of them right on one scale (CLEARLY_MORE_RIGHT), that one: a network that is not
       scale-free (sigmoid units, batch normalisation) falls apart on the scale it was not trained on.
    2. Otherwise its choices hardly depend on the scale (a relu network: relu is linear above 0), and how sure it
       is tells: trained with cross-entropy, a network's first choice for the median image is a few nats ahead of
       its second (metrics.output_margins); 255 times larger inputs make that margin about 255 times larger (the
       softmax saturates), 255 times smaller inputs about 255 times smaller (nearly uniform outputs). So 0..1 when
       the median margin on 0..1 is at least MARGIN_SPLIT, else 0..255.
    3. Where the margin does not grow with the pixels (SCALE_FREE: a model whose outputs ignore its inputs), it
       tells nothing either: 0..1, the sheets' scale, and the note says to compare.
    results/logs/pixel_scale_rule.txt measures the rule on every fixture and committed model
    (experiments/pixel_scale_rule.py). Not the lower loss: an accurate model fed 255 times larger pixels is
    overconfident and still right on nearly every image, so its loss there is the lower one (the tf_keras_accurate
    fixtures).
    """
    found = {}
    for normalize in (True, False):
        accuracy = scores.loss_and_accuracy(probabilities[normalize], labels)[1]
        found[normalize] = accuracy, float(np.median(scores.output_margins(probabilities[normalize])))
    (accuracy, margin), (raw_accuracy, raw_margin) = found[True], found[False]
    measured = (f"chosen on {len(labels)} test images: {accuracy:.1%} right on 0..1, "
                f"{raw_accuracy:.1%} on 0..255")
    if abs(accuracy - raw_accuracy) >= CLEARLY_MORE_RIGHT:
        chosen = accuracy > raw_accuracy
        return chosen, f"pixels {PIXELS[chosen]}, {measured}"
    margins = (f"the median image's first choice {format_margin(margin)} ahead of its second on 0..1, "
               f"{format_margin(raw_margin)} on 0..255")
    if raw_margin <= SCALE_FREE * margin:  # also margins equal on both scales: 0 (ties) or saturated on both
        return True, (f"pixels 0..1, the sheets' scale: {measured}, and {margins}: its outputs do not follow the "
                      "pixels' size; compare with --normalize yes and no")
    chosen = margin >= MARGIN_SPLIT
    note = f"pixels {PIXELS[chosen]}, {measured}, so by how sure it is: {margins}"
    if MARGIN_SPLIT / CLOSE_MARGIN < margin < MARGIN_SPLIT * CLOSE_MARGIN:
        note += "; close to the split: compare with --normalize yes and no"
    return chosen, note


def format_margin(margin):
    """A margin in nats for the note: "9.1 nats", or "saturated" where the softmax's second output is 0."""
    return "saturated" if not np.isfinite(margin) else f"{margin:.3g} nats"
