"""Every random stream of the package, in one place.

A stream is a torch generator seeded by ``(seed, stream id, *keys)`` through numpy's
``SeedSequence``, so different ids (and keys, such as an iteration) give independent
draws, and every draw is a pure function of the config's seed: a resumed run sees the
same numbers as an uninterrupted one. Ids are never reused; a new stream takes a new id.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    TRAIN = 0  # the K initial networks of outer iteration i (key: i); a pool's training draws
    HELD_OUT = 1  # the networks an evaluation trains
    FIXED = 2  # the one network of init.kind: fixed
    BATCH = 3  # the shuffle of the real data for outer epoch e (key: e)
    DATA = 4  # the synthetic data's initialisation (real samples or noise, soft labels)
    BASELINE = 5  # a baseline's split of the training set and its drawn sets
    FULL_DATA = 6  # the shuffles and augmentations of full-data training
    TRANSFER = 7  # the samples that tune a cross-architecture evaluation's learning rate
    SELECT = 8  # the training samples eval.select: best_train scores on
    LEARNER = 10  # a continual learner's initial network
    SHUFFLE = 11  # a continual learner's minibatch order
    MEMORY = 12  # the samples of a real episodic memory
    SENSITIVITY = 13  # benchmarks/sensitivity.py: the perturbations of distilled data
    POOL = 14  # network i of a pretrained pool (keys: i, then the pass e); pools before it used 5
    RANDOM_REAL = 15  # benchmarks/random_real.py: its drawn real images and validation samples; before it, 11
    KIP_HOLDOUT = 16  # the training samples a kernel method holds out (never targets; its log's KRR accuracy)
    KIP_TARGETS = 17  # KIP's class-balanced target batch of step i (key: i)
    KIP_KERNEL = 18  # a sampled kernel's random networks at KIP step i (key: i)
    KIP_AUGMENT = 19  # the augmentation of KIP's target batch of step i (key: i)
    KIP_EVAL_KERNEL = 20  # a sampled kernel's random networks for evaluations and Label Solve


def generator(seed: int, *keys: int) -> torch.Generator:
    """A torch generator seeded by ``(seed, *keys)``, the first key being a ``Stream`` id;
    different ids or keys give independent streams."""
    state = np.random.SeedSequence([seed, *map(int, keys)]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))
