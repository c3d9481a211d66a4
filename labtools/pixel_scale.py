"""Which pixel scale, 0..1 or 0..255, a model from elsewhere was trained on, when nothing recorded it: the rule of
`evaluate.py --normalize auto` (docs/usage.md), from the model's outputs on the same test images fed on each
scale. grading.choose_pixel_scale runs the model; choose() decides."""

import numpy as np
from scipy.stats import binomtest

from labtools import scores

AUTO_SCALE_IMAGES = 5000  # test images scored on each pixel scale when nothing recorded the model's
# The accuracy step's sign test: the chance that a model equally right on both scales would be right on one scale
# only this lopsidedly often (two-sided); below it, the scale right more often is the model's.
SIGNIFICANCE = 0.001
MARGIN_SPLIT = 0.5  # nats: the median image's margin on 0..1 from which the model was trained on 0..1
CLOSE_MARGIN = 3.0  # within a factor 3 of MARGIN_SPLIT, either way, the note says the margin is close to the split
SCALE_FREE = 2.0  # margins on 0..255 at most twice those on 0..1: the outputs do not follow the pixels' size
PIXELS = {True: "0..1", False: "0..255"}  # normalize: the pixel scale


def choose(probabilities, labels):
    """(normalize, note): the pixel scale, 0..1 or 0..255, that a model was trained on, for a model whose training
    nobody recorded (a model from elsewhere), from its outputs on the same test images fed on each scale:
    probabilities {True: on 0..1, False: on 0..255}, each (N, 10); labels (N, 10) one-hot.

    1. If it gets more of them right on one scale beyond chance, that one: of the images it gets right on one scale
       only, a sign test says whether their split between the scales could be chance (SIGNIFICANCE). A network that
       is not scale-free (sigmoid units, batch normalisation) falls apart on the scale it was not trained on; a relu
       network that is nearly so still errs on a few more images on the wrong scale.
    2. Otherwise its choices hardly depend on the scale (a relu network: relu is linear above 0), and how sure it
       is tells: trained with cross-entropy, a network's first choice for the median image is a few nats ahead of
       its second (scores.output_margins); 255 times larger inputs make that margin about 255 times larger (the
       softmax saturates), 255 times smaller inputs about 255 times smaller (nearly uniform outputs). So 0..1 when
       the median margin on 0..1 is at least MARGIN_SPLIT, else 0..255.
    3. Where the margin does not grow with the pixels (SCALE_FREE: a model whose outputs ignore its inputs), it
       tells nothing either: 0..1, the sheets' scale, and the note says to compare.
    results/logs/pixel_scale_rule.txt measures the rule on every fixture and committed model
    (experiments/pixel_scale_rule.py). Not the lower loss: an accurate model fed 255 times larger pixels is
    overconfident and still right on nearly every image, so its loss there is the lower one (the tf_keras_accurate
    fixtures).
    """
    right = {normalize: probabilities[normalize].argmax(axis=1) == labels.argmax(axis=1) for normalize in (True, False)}
    only = {normalize: int(np.sum(right[normalize] & ~right[not normalize])) for normalize in (True, False)}
    chance = sign_test(only[True], only[False])
    accuracy, raw_accuracy = right[True].mean(), right[False].mean()
    margin, raw_margin = (float(np.median(scores.output_margins(probabilities[normalize])))
                          for normalize in (True, False))
    measured = (f"chosen on {len(labels)} test images: {accuracy:.1%} right on 0..1, {raw_accuracy:.1%} on 0..255 "
                f"({only[True]} right on 0..1 only, {only[False]} on 0..255 only: a sign test's p = {chance:.2g})")
    if chance < SIGNIFICANCE:
        chosen = only[True] > only[False]
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


def sign_test(only_one, only_other):
    """The two-sided p-value of right answers split between two scales as only_one to only_other, were each image
    right on one scale only as likely to be right on either (1.0 when there are none)."""
    if only_one + only_other == 0:
        return 1.0
    return float(binomtest(only_one, only_one + only_other, 0.5).pvalue)
