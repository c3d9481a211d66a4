"""The training batches model.fit reads: each epoch's images in a shuffled order that depends on (seed, epoch)
only, the same on every backend, TensorFlow's own.

Why not model.fit(x, y, shuffle=True): each backend's Keras would shuffle its own way (the same seed, other
batches, other numbers), and a run resumed after epoch k would not see the batches an uninterrupted one sees. The
order is tf.random.experimental.stateless_shuffle(range(images), seed=[seed, epoch]), computed in NumPy (a test
compares the two), so the runs trained with TensorFlow's own shuffle keep their numbers.
"""

import numpy as np

from labtools import backend

# Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011), as TensorFlow implements it
_PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_PHILOX_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
_STATELESS_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)  # TensorFlow's key for turning a stateless seed into a stream
_LOW = np.uint64(0xFFFFFFFF)


def _philox(counters, key):
    """Philox4x32-10 of (N, 4) 32-bit counters under a (2,) key: (N, 4) uint32, TensorFlow's PhiloxRandom()."""
    block = np.asarray(counters, dtype=np.uint64).reshape(-1, 4)
    key = [np.uint64(k) for k in key]
    for _ in range(10):
        high_low = [np.uint64(multiplier) * block[:, column] for multiplier, column in zip(_PHILOX_MULTIPLIERS, (0, 2))]
        block = np.stack([(high_low[1] >> np.uint64(32)) ^ block[:, 1] ^ key[0], high_low[1] & _LOW,
                          (high_low[0] >> np.uint64(32)) ^ block[:, 3] ^ key[1], high_low[0] & _LOW], axis=1)
        key = [(k + np.uint64(step)) & _LOW for k, step in zip(key, _PHILOX_KEY_STEPS)]
    return block.astype(np.uint32)


def epoch_order(images, seed, epoch):
    """The order in which epoch `epoch` of a run with `seed` visits training images 0..images-1.

    It is tf.random.experimental.stateless_shuffle(tf.range(images), seed=[seed, epoch]) computed in NumPy: the seed
    scrambled into a Philox key and counter, one 32-bit draw per swap of a Fisher-Yates shuffle.
    """
    seed, epoch = (int(value) & 0xFFFFFFFFFFFFFFFF for value in (seed, epoch))
    mixed = _philox([[seed & 0xFFFFFFFF, seed >> 32, epoch & 0xFFFFFFFF, epoch >> 32]], _STATELESS_SCRAMBLE_KEY)[0]
    blocks = np.arange(-(-max(images - 1, 0) // 4), dtype=np.uint64)  # the counter's low words count the blocks
    counters = np.stack([blocks & _LOW, blocks >> np.uint64(32), *(np.full_like(blocks, word) for word in mixed[2:])],
                        axis=1)
    draws = _philox(counters, mixed[:2]).reshape(-1).tolist()
    order = list(range(images))
    for i in range(images - 1):  # TensorFlow's ShuffleRange: swap i with i + draw mod (images - i)
        j = i + draws[i] % (images - i)
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


def shuffled_batches(x, y, sample_weight=None, *, batch_size, seed, epochs):
    """What model.fit reads its training batches from: (x, y[, sample_weight]) batch_size images at a time, each
    epoch of `epochs` (a range: a resumed run starts after its last finished epoch) in epoch_order(seed, epoch).
    Pass model.fit steps_per_epoch=steps_per_epoch(len(x), batch_size) with it."""
    arrays = (x, y) if sample_weight is None else (x, y, sample_weight)
    return training_data(arrays, batch_size, lambda: (epoch_order(len(x), seed, epoch) for epoch in epochs))


def steps_per_epoch(images, batch_size):
    return -(-images // batch_size)


def training_data(arrays, batch_size, orders):
    """Tuples of `arrays` (indexed alike) for the indices of each order in orders() (one per epoch), batch_size at a
    time, in what model.fit reads fastest on this backend.

    A generator of NumPy batches on JAX. On PyTorch a DataLoader over the same batches, indexed (batch i of the
    whole run), so that each pass over it starts again at the first batch: Keras's torch trainer reads one batch
    to build the model, then starts a new pass, and a stream would have lost that batch (every epoch a batch
    late, the last one short; an epoch of one batch lost whole). Its random generator is its own: the one Keras
    would make draws its seed from torch's global generator, which Keras's dropout uses there, so a resumed run
    would drop other units. On TensorFlow a tf.data pipeline that gathers the batches in its own threads, as
    TensorFlow's own shuffling did (a Python generator there adds a hop per batch, which the small models feel),
    with the same batches, so the same numbers.
    """
    if backend.NAME == "jax":
        return (tuple(array[order[start: start + batch_size]] for array in arrays)
                for order in orders() for start in range(0, len(order), batch_size))
    if backend.NAME == "torch":
        import torch

        epochs = list(orders())  # one permutation of the indices per epoch: a few MB for the longest run
        starts = [(epoch, start) for epoch, order in enumerate(epochs) for start in range(0, len(order), batch_size)]

        class Batches(torch.utils.data.Dataset):
            def __len__(self):
                return len(starts)

            def __getitem__(self, index):
                epoch, start = starts[index]
                return tuple(array[epochs[epoch][start: start + batch_size]] for array in arrays)

        return torch.utils.data.DataLoader(Batches(), batch_size=None, shuffle=False, generator=torch.Generator())
    import tensorflow as tf

    constants = [tf.constant(array) for array in arrays]
    epochs = tf.data.Dataset.from_generator(orders, output_signature=tf.TensorSpec((None,), tf.int64))
    indices = epochs.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    return indices.map(lambda index: tuple(tf.gather(constant, index) for constant in constants)).prefetch(2)
