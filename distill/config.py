"""The experiment configuration: a YAML file validated by pydantic models.

``load_config(path, overrides)`` reads a YAML file (or the bundled default), applies
``key.sub=value`` overrides, and returns a validated ``Config``. Every error, be it an
unknown key, a wrong type or an impossible value, is a ``UserError`` that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import hashlib
import json
import re

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from .choices import (AUGMENTATIONS, BACKGRAD_MODES, BASELINES, KERNEL_KINDS, KERNEL_METHODS, KERNELS, LR_GRID, MEMORIES,
                      PREPROCESSING, SCHEMES)
from .errors import UserError, closest


# Numbers are strict: a YAML ``true`` is not the number 1, nor ``"3"`` the integer 3.
Number = Annotated[float, Strict()]
Integer = Annotated[int, Strict()]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
MAX_NETWORKS = 100_000
MAX_LR = 1e6  # a larger step size is a typo (and overflows float32 through softplus⁻¹)
Networks = Annotated[int, Strict(), Field(ge=1, le=MAX_NETWORKS)]  # a count of networks (or of sets) to train
# random ConvNets of one convnet_rf draw: 1,024 of 32 channels hold 2 GB of CIFAR-10 features per 1,000-image block
MAX_KERNEL_NETWORKS = 1024
KernelNetworks = Annotated[int, Strict(), Field(ge=1, le=MAX_KERNEL_NETWORKS)]


class Section(BaseModel):
    """A config section: unknown keys and non-finite numbers (``.inf``, ``.nan``) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class DatasetConfig(BaseModel):
    """The dataset: ``name``, ``root`` and ``download``, plus the dataset's own options, which
    pass through to its reader unchecked here (the reader refuses an option it does not take).

    Image datasets (``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``,
    ``svhn``, ``usps``) take ``resize`` (a side ``s`` or ``[h, w]``: resampled bilinearly once
    at load time, antialiased when shrinking) and ``channels`` (1 or 3: ``1 → 3`` repeats the
    grey channel, ``3 → 1`` takes the luma ``0.299 R + 0.587 G + 0.114 B``); both default to
    keeping the files' own size and channels. ``normalise`` (default ``true``) standardises each
    channel with the training split's constants, ``(pixel − mean_c)/std_c``; ``false`` keeps the
    pixels in [0, 1], as Lopez-Paz & Ranzato's GEM benchmarks do
    (``experiments/permuted_mnist_gem_real_reference.yaml``). Continual streams read their
    dataset with these options too.

    Text datasets (``imdb``, ``sst5``, ``trec6``, ``trec50``) take ``glove``
    (``glove/glove.6B.zip``: the GloVe file, ``.txt``, ``.txt.gz`` or the 6B ``.zip``,
    relative to ``root``), ``glove_member`` (the file of a ``.zip`` to read; none: the one
    ending in ``.<embed_dim>d.txt``),
    ``embed_dim`` (50: its dimension), ``max_len`` (400: sentences are padded or truncated to
    this many tokens), ``max_vocab`` (none: the vocabulary cap, at least 2), ``min_freq`` (1:
    the fewest training occurrences of a vocabulary word), ``missing`` (``zero``: the vector of
    a word GloVe lacks, ``zero`` or ``random`` N(0, 0.1²)) and ``seed`` (0: the seed of those
    ``random`` vectors)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = Field(
        "digits",
        description="images: `digits` (scikit-learn's 8×8 digits, bundled), `mnist`, `fashion_mnist`, `cifar10`, "
        "`cifar100`, `svhn`, `usps`; text: `imdb` (`aclImdb/`), `sst5` (`sst/*.txt` PTB trees), `trec6`, `trec50` "
        "(`trec/*.label`)",
    )
    root: str = Field(
        "data",
        description="folder holding the files in torchvision's layout (`MNIST/raw/…`, `cifar-10-batches-py/`, "
        "`SVHN/*.mat`, `USPS/usps.bz2`); a relative path is relative to the directory `distill` is started from",
    )
    download: bool = Field(
        False, description="fetch missing files from the canonical sources (checked against their checksum where one is known)"
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(BaseModel):
    """The architecture: ``name`` and the architecture's own options, passed through to it (an
    option it does not take is an error that names the closest one).

    ``lenet`` and ``alexcifarnet`` take no options; ``convnet``: ``width`` (128), ``depth`` (3),
    ``norm`` (``instance``, ``batch`` or ``none``); ``mlp``: ``hidden`` (``[100, 100]``; ``[]``
    is a linear classifier); ``textcnn``: ``widths`` (``[3, 4, 5]``: filter widths), ``maps``
    (100: feature maps per width); ``textlstm``: ``hidden`` (100), ``layers`` (1);
    ``resnet18``: ``width`` (64: channels of the stem; the stages have ``w, 2w, 4w, 8w``),
    ``norm`` (``group``, or ``batch``: batch statistics), ``groups`` (32: a ``C``-channel
    GroupNorm has ``gcd(groups, C)`` groups)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = Field(
        "lenet",
        description="`lenet`, `alexcifarnet`, `convnet`, `mlp`, `resnet18` (CIFAR-style stem) for images; "
        "`textcnn`, `textlstm` for text",
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class InitConfig(Section):
    """The distribution ``p(θ₀)`` of the initial weights the data is learned for, and how the
    evaluation's networks are drawn."""

    kind: Literal["fixed", "random", "pretrained_fixed", "pretrained_random"] = Field(
        "fixed",
        description="`fixed`: one initial network, drawn once and stored in the checkpoint (and evaluated); "
        "`random`: `outer.models_per_iteration` fresh networks every iteration, and evaluation trains unseen ones; "
        "`pretrained_fixed`: network `init.network` of the pool `init.pool`; `pretrained_random`: every iteration "
        "draws networks among the pool's first `init.train_networks`, and evaluation fine-tunes the rest",
    )
    scheme: Literal[SCHEMES] = Field(  # type: ignore[valid-type]
        "xavier",
        description="how initial weights are drawn (also the networks of evaluations and baselines): `xavier`, "
        "`xavier_uniform`, `kaiming`, `normal`, `orthogonal`, `default` (PyTorch's); biases start at 0",
    )
    gain: Number = Field(
        1.0, ge=0, description="gain (`xavier`, `xavier_uniform`, `orthogonal`), std (`normal`) or negative slope (`kaiming`)"
    )
    pool: str | None = Field(
        None,
        description="`pretrained_*` only, and needed by them: the pool file written by `distill pretrain`",
    )
    train_networks: PositiveInt | None = Field(
        None,
        description="`pretrained_random` only, and needed by it: the pool's first N networks train, "
        "the others are held out for evaluation (at least one must be)",
    )
    network: Integer = Field(0, ge=0, description="`pretrained_fixed`: which network of the pool")

    @model_validator(mode="after")
    def _pool_for_pretrained(self) -> "InitConfig":
        pretrained = self.kind.startswith("pretrained")
        if pretrained != (self.pool is not None):
            raise ValueError("init.pool goes with init.kind pretrained_fixed or pretrained_random, and they need a pool")
        if (self.kind == "pretrained_random") != (self.train_networks is not None):
            raise ValueError("init.train_networks (the pool's first N networks train, the rest are held out) "
                             "goes with init.kind: pretrained_random, and it needs one")
        return self


class SyntheticConfig(Section):
    """The distilled set: ``n`` samples in ``steps`` gradient steps of ``n / steps`` samples,
    repeated for ``epochs`` passes (``T = steps × epochs`` learned learning rates), their
    labels (fixed or learned) and how they start."""

    n: PositiveInt = Field(
        100,
        description="number of synthetic samples, a multiple of `steps` (hard labels: sample `i` has class "
        "`i mod C`; with learned labels `n` may be smaller than the number of classes)",
    )
    steps: PositiveInt = Field(10, description="gradient steps `S` of the inner loop; each uses `n / S` samples")
    epochs: PositiveInt = Field(3, description="passes over the `S` steps; `T = S × epochs` learning rates")
    lr_init: Number = Field(0.02, gt=0, le=MAX_LR, description="initial learning rate of every step")
    data_init: Literal["normal", "real"] = Field(
        "real", description="`normal`: N(0, 1); `real`: random real training samples of each sample's class"
    )
    labels: Literal["hard", "learned"] = Field(
        "hard",
        description="`hard`: fixed class indices; `learned`: a real-valued label vector per sample, learned with "
        "the data (soft labels, Sucholutsky & Schonlau)",
    )
    label_init: Literal["one_hot", "smoothed", "normal", "file"] = Field(
        "one_hot",
        description="learned labels start `one_hot`, `smoothed` (`(1 − ε)·onehot + ε/C`), `normal` (N(0, 1)) "
        "or from `label_file`; anything but `one_hot` needs `labels: learned`",
    )
    label_smoothing: Number = Field(
        0.1, ge=0, le=1, description="`ε` of `smoothed` (and of `one_hot` under `label_softmax`)"
    )
    label_file: str | None = Field(
        None,
        description="`label_init: file` only, and needed by it: `labels.csv` of an earlier run, or a `.pt` file "
        "holding an [n, C] tensor",
    )
    label_softmax: bool = Field(
        False,
        description="learned labels: train against `softmax(labels)` instead of the label values as given; "
        "`one_hot` and `smoothed` labels then start as the logits `log((1 − ε)·onehot + ε/C)`",
    )
    freeze_data: bool = Field(
        False, description="learned labels: learn only the labels and learning rates, keep the data as initialised"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "SyntheticConfig":
        if self.n % self.steps:
            raise ValueError(f"n = {self.n} samples cannot be split into {self.steps} equal steps")
        if (self.label_init == "file") != (self.label_file is not None):
            raise ValueError("synthetic.label_file goes with label_init: file, and label_init: file needs a label_file")
        if self.labels == "hard" and (self.label_init != "one_hot" or self.label_softmax):
            raise ValueError("label_init and label_softmax apply to learned labels: set synthetic.labels: learned")
        if self.labels == "hard" and self.freeze_data:
            raise ValueError("freeze_data with hard labels would learn nothing but the learning rates; set synthetic.labels: learned")
        return self


class OuterConfig(Section):
    """The outer loop: Adam on the synthetic data, labels and raw learning rates, against
    minibatches of real training data, with a step decay of its learning rate. The default
    ``batch_size``, 1437, is all of digits' training images."""

    epochs: PositiveFloat = Field(
        400, description="passes over the real training set (iterations: `⌈epochs × ⌊N / batch_size⌋⌉`)"
    )
    batch_size: PositiveInt = Field(
        1437,
        description="real samples per outer iteration (a larger batch is capped at the training set)",
    )
    lr: PositiveFloat = Field(0.02, description="Adam's learning rate for the synthetic data and learning rates")
    label_lr: PositiveFloat | None = Field(
        None,
        description="Adam's learning rate for learned labels (a group of its own, decayed with the others; "
        "null: `lr`); `outer.label_lr` needs `synthetic.labels: learned` (a continual memory's labels are fixed)",
    )
    betas: tuple[Number, Number] = Field((0.5, 0.999), description="Adam's betas, each in [0, 1)")
    decay_epochs: PositiveFloat = Field(100, description="epochs between decays of Adam's learning rate")
    decay_factor: PositiveFloat = Field(0.5, description="factor of each decay")
    models_per_iteration: Networks = Field(
        1, description="`K`, initial networks per iteration (a fixed initialisation uses its one network)"
    )
    backgrad: Literal[BACKGRAD_MODES] = Field(  # type: ignore[valid-type]
        "stored",
        description="how the reverse pass gets each step's graph: `stored` keeps every step's double-backward "
        "graph (fastest); `recompute` keeps only the weights and rebuilds one step at a time (less memory); "
        "both give the same numbers",
    )
    clip_grad_norm: PositiveFloat | None = Field(
        None,
        description="rescale the back-gradient `g` (data, raw learning rates and labels together) to "
        "`g · min(1, c/‖g‖₂)` before the Adam step (null: never)",
    )

    @model_validator(mode="after")
    def _betas_in_range(self) -> "OuterConfig":
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        return self


class EvalConfig(Section):
    """How the distilled data is evaluated: networks trained on it and tested on the test
    split, at the end and, optionally, during training."""

    models: Networks = Field(
        200,
        description="networks trained on the final data and tested (random init: fresh held-out draws; "
        "fixed init: the one fixed network; pretrained_random: the pool's held-out networks, at most this many)",
    )
    every: Integer = Field(0, ge=0, description="evaluate every N outer iterations (0: only at the end)")
    models_during: Networks = Field(10, description="networks of each periodic evaluation")
    batch_size: PositiveInt = Field(2048, description="test samples per forward pass")
    select: Literal["last", "best_train"] = Field(
        "last",
        description="which data the run ends with: `last`, or `best_train`: of the periodic evaluations (which it "
        "needs, `every` > 0; plus one at the last iteration) the data whose networks scored best on "
        "`select_samples` real *training* samples (the test split plays no part in the choice)",
    )
    select_samples: PositiveInt = Field(
        10000, description="training samples `best_train` scores on (a fixed seeded draw)"
    )

    @model_validator(mode="after")
    def _selection_needs_evaluations(self) -> "EvalConfig":
        if self.select == "best_train" and self.every == 0:
            raise ValueError("eval.select: best_train chooses among the periodic evaluations; set eval.every > 0")
        return self


class RunConfig(Section):
    """Logging, checkpoints and the device."""

    log_every: PositiveInt = Field(10, description="outer iterations between rows of `log.csv`")
    checkpoint_every: PositiveInt = Field(100, description="outer iterations between checkpoints")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto` (CUDA when available), `cpu`, `cuda`")
    progress: bool = Field(True, description="show a tqdm progress bar")
    timeout: PositiveFloat = Field(
        600, description="distributed runs (`torchrun ... -m distill run`): seconds a process waits for the others at any "
        "exchange before every process stops with an error",
    )
    tensorboard: bool = Field(
        False, description="also write the log's scalars and the run's pictures for TensorBoard, to `tensorboard/` in the "
        "run directory (`distill run --tensorboard DIR` writes them to `DIR`); needs `pip install tensorboard`",
    )


class PretrainConfig(Section):
    """``distill pretrain``: ``networks`` networks trained on the source ``dataset`` (the
    config's own dataset when omitted), ``models_at_once`` at a time with ``vmap``, to make
    the pool of a ``pretrained_*`` initialisation."""

    dataset: DatasetConfig | None = Field(
        None,
        description="the source dataset, with the keys of `dataset` (and their defaults, not the config's "
        "`dataset` values); null: the config's own `dataset`",
    )
    networks: Networks = Field(20, description="networks in the pool")
    models_at_once: Networks = Field(10, description="networks trained at once, as one stacked tensor")
    epochs: PositiveInt = Field(10, description="passes over the source training set")
    batch_size: PositiveInt = Field(64, description="minibatch size (the last batch of a pass may be smaller)")
    optimizer: Literal["sgd", "adam"] = Field("adam", description="`sgd` (plain, or with `momentum`) or `adam`")
    lr: PositiveFloat = Field(0.001, description="the optimizer's learning rate")
    momentum: Number = Field(0.0, ge=0, lt=1, description="SGD's momentum")
    weight_decay: Number = Field(0.0, ge=0, description="the optimizer's weight decay")


class BaselineConfig(Section):
    """The baselines of ``distill baseline`` (Wang et al. Sec. 4): how many random sets, the
    (learning rate, epochs) grid, and the cheap search that picks its best cell."""

    sets: Networks = Field(10, description="random sets (`random_real`, `kmeans`, and the `knn` memories)")
    candidates: Networks = Field(50, description="`optimized_real`: random sets sampled")
    keep: Number = Field(0.2, gt=0, le=1, description="`optimized_real`: the fraction of candidates kept, best first")
    lrs: list[PositiveFloat] = Field(
        list(LR_GRID), min_length=1, description="the grid's constant learning rates"
    )
    epochs: list[PositiveInt] = Field(
        [1, 3, 5], min_length=1, description="the grid's epoch counts (plus the distilled set's own `synthetic.epochs`)"
    )
    search_models: Networks = Field(10, description="networks that score each grid cell")
    search_samples: PositiveInt = Field(
        2000, description="held-out training samples that score each grid cell (at most a fifth of the training set)"
    )
    memory: Literal[MEMORIES] = Field(  # type: ignore[valid-type]
        "random_real", description="`knn`'s memory: `random_real` or `kmeans`"
    )
    distilled_run: str | None = Field(
        None,
        description="a distillation run directory whose learned learning rates (from its `metrics.json`) join the grid",
    )


class FullTrainConfig(Section):
    """``distill train``: the model trained on the whole training set (Adam), for the distillation ratio."""

    epochs: PositiveInt = Field(5, description="passes over the training set")
    lr: PositiveFloat = Field(1e-3, description="Adam's learning rate")
    batch_size: PositiveInt = Field(128, description="minibatch size")
    augment: list[Literal[AUGMENTATIONS]] = Field(  # type: ignore[valid-type]
        [], description="augmentations of every minibatch (images only): `flip` (left-right, probability ½), `crop` "
        "(shifts of up to H/8, zero-filled: on standardised pixels, the channel mean)"
    )
    decay_epochs: Integer = Field(0, ge=0, description="multiply Adam's learning rate by `decay_factor` every this many "
                                  "epochs; 0: a constant rate")
    decay_factor: Number = Field(0.1, gt=0, le=1, description="the learning-rate decay factor")
    cache: str = Field(
        "runs/full_data.json", description="the file where `distill train` keeps its results, by dataset, model and seed"
    )


class KernelConfig(Section):
    """The kernel of ``method: kip`` and ``method: label_solve`` (``distill.kernels``): the
    NTK or NNGP of an infinitely wide ReLU network in the NTK parameterisation."""

    name: Literal[KERNELS] = Field(  # type: ignore[valid-type]
        "fc",
        description="`fc` (fully connected, closed form), `conv` (ConvVec: 3×3 conv-ReLU blocks, flattened readout, "
        "closed form), `convnet` (the ConvNet, conv-ReLU-2×2 average pool blocks, exact; images up to 16×16) or "
        "`convnet_rf` (the ConvNet's NNGP estimated from `networks` random ConvNets of `width` channels, drawn afresh "
        "every KIP step; `kind: nngp`)",
    )
    kind: Literal[KERNEL_KINDS] = Field("ntk", description="`ntk` (gradient-descent-trained networks) or `nngp` (Bayesian)")  # type: ignore[valid-type]
    depth: PositiveInt = Field(3, description="hidden layers (`fc`) or conv blocks (the conv kernels)")
    w_std: PositiveFloat = Field(2**0.5, description="the weights' standard deviation `σ_w`")
    b_std: Number = Field(0.1, ge=0, description="the biases' standard deviation `σ_b`")
    width: PositiveInt = Field(128, description="`convnet_rf`: channels of each random network")
    networks: KernelNetworks = Field(8, description="`convnet_rf`: random networks per draw")
    eval_networks: KernelNetworks | None = Field(
        None,
        description="`convnet_rf`: random networks of the one draw that measures KRR accuracy (the held-out figure "
        "of every logged step, on rank 0, and the test figure; Label Solve solves its labels with it too); more "
        "networks make a closer estimate of the kernel at a cost linear in their number; default: `networks`",
    )
    block: PositiveInt = Field(256, description="pairs or rows computed at once where a kernel works in blocks")

    @model_validator(mode="after")
    def _eval_networks_need_random_features(self) -> "KernelConfig":
        if self.eval_networks is not None and self.name != "convnet_rf":
            raise ValueError(f"eval_networks sets the random networks of kernel.name=convnet_rf; the {self.name} kernel "
                             "is exact and has none")
        return self


class TransferConfig(Section):
    """The finite networks (the config's ``model``) trained on the support set after a
    kernel method, full batch, and tested on the test split."""

    models: Networks = Field(5, description="networks trained (mean ± std of their test accuracies)")
    steps: PositiveInt = Field(300, description="full-batch optimizer steps on the support set")
    optimizer: Literal["sgd", "adam"] = Field("adam", description="`sgd` (plain) or `adam`")
    lr: PositiveFloat = Field(1e-3, description="the optimizer's learning rate")
    loss: Literal["mse", "xent"] = Field(
        "mse",
        description="`mse`: `½‖f(x) − y_s‖²` against the support labels (as KRR uses them); `xent`: cross-entropy "
        "with the class `argmax y_s`",
    )


class KipConfig(Section):
    """``method: kip`` and ``method: label_solve`` (Nguyen et al.): the support set is
    ``synthetic.n`` class-balanced samples (``synthetic.data_init``; KIP learns the labels too
    with ``synthetic.labels: learned``); the other ``synthetic`` keys and ``outer`` are not used."""

    steps: PositiveInt = Field(200, description="KIP: Adam steps (Label Solve has no steps: it makes one pass over the targets)")
    lr: PositiveFloat = Field(0.01, description="KIP: Adam's learning rate for the support inputs and labels")
    decay_steps: PositiveInt | None = Field(
        None, description="KIP: steps between decays of Adam's learning rate, `lr · decay_factor^⌊t / decay_steps⌋` "
        "(null: `lr` throughout)"
    )
    decay_factor: PositiveFloat = Field(0.5, description="KIP: factor of each decay of the learning rate")
    betas: tuple[Number, Number] = Field((0.9, 0.999), description="KIP: Adam's betas, each in [0, 1)")
    target_batch: PositiveInt = Field(
        1000, description="KIP: class-balanced target samples drawn afresh every step (at most the target set)"
    )
    reg: PositiveFloat = Field(
        1e-6, description="the ridge, relative: `λ = reg · tr(K_ss) / n_s`"
    )
    preprocess: Literal[PREPROCESSING] = Field(  # type: ignore[valid-type]
        "standard",
        description="`none`, `standard` (per-channel standardisation with the training split's statistics) or `zca` "
        "(standardisation, then regularised ZCA whitening), fitted on the training split, applied to every split",
    )
    zca_reg: PositiveFloat = Field(0.1, description="`zca`: the whitening's regulariser, `ε = zca_reg · tr(C) / d`")
    augment: list[Literal[AUGMENTATIONS]] = Field(  # type: ignore[valid-type]
        [], description="KIP: augmentations of the target batches: `flip` (left-right), `crop` (shifts of up to H/8)"
    )
    augment_fraction: Number = Field(1.0, ge=0, le=1, description="KIP: the fraction of every target batch augmented")
    holdout: Integer = Field(
        1000, ge=0, description="training samples held out of the targets (at most a fifth of the training set); "
        "the log's KRR accuracy is measured on them"
    )
    block: PositiveInt = Field(1000, description="target or test rows per kernel block (Label Solve, evaluations)")
    transfer: TransferConfig = Field(TransferConfig(), description="finite networks trained on the support set")

    @model_validator(mode="after")
    def _betas_in_range(self) -> "KipConfig":
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        return self


class StreamConfig(Section):
    """A task stream of ``distill.datasets.streams``: permuted streams draw
    ``samples_per_task`` images per task; split streams cut the classes into ``tasks``
    groups of ``classes_per_task`` (and keep at most ``samples_per_task`` samples)."""

    name: str = Field(
        "permuted_digits",
        description="`permuted_mnist`, `permuted_digits` (every task a fixed random pixel permutation) or "
        "`split_cifar100` (every task its own classes)",
    )
    tasks: PositiveInt = Field(5, description="number of tasks")
    samples_per_task: PositiveInt | None = Field(
        200,
        description="training samples per task (permuted streams need it; split streams: at most this many, "
        "null: all of the task's)",
    )
    classes_per_task: PositiveInt | None = Field(
        None,
        description="split streams only, and needed by them: classes per task (`tasks × classes_per_task` must "
        "equal the dataset's classes)",
    )


class MemoryDistillConfig(Section):
    """How a task's training data is distilled into its memory (``memory: distilled``):
    ``memory_per_task`` samples in ``steps`` steps for ``epochs`` epochs, from random
    initial weights (``init.scheme``, ``init.gain``), with the outer loop's settings."""

    steps: PositiveInt = Field(1, description="gradient steps; `memory_per_task` must be a multiple of them")
    epochs: PositiveInt = Field(3, description="passes over the steps")
    lr_init: Number = Field(0.02, gt=0, le=MAX_LR, description="initial learning rate of every step")
    data_init: Literal["normal", "real"] = Field(
        "real", description="`normal`: N(0, 1); `real`: random real samples of the task"
    )
    outer: OuterConfig = Field(
        OuterConfig(epochs=100, batch_size=1000, lr=0.01, decay_epochs=50, models_per_iteration=4),
        description="the distillation's outer loop: the keys of `outer`, with their own defaults",
    )


class ContinualConfig(Section):
    """``method: continual``: a learner trained on a stream of tasks (GEM, EWC, plain). The
    model, ``seed``, ``init.scheme`` and ``init.gain`` (the learner's initial weights, and
    those of a memory's distillation), ``dataset.root``, ``dataset.download``,
    ``eval.batch_size``, ``run.device`` and ``run.progress`` come from the usual sections;
    ``dataset.name`` (the stream names its dataset), ``synthetic``, ``outer`` and
    ``eval.models`` are not used."""

    stream: StreamConfig = Field(StreamConfig(), description="the task stream")
    learner: Literal["single", "ewc", "gem"] = Field(
        "gem", description="`single` (plain SGD fine-tuning), `ewc` (elastic weight consolidation) or `gem`"
    )
    memory: Literal["real", "distilled"] = Field(
        "real", description="GEM's episodic memory: random `real` samples of each task, or `distilled` ones (GEM only)"
    )
    memory_per_task: PositiveInt = Field(10, description="memory samples per task")
    memory_strength: Number = Field(0.5, ge=0, description="GEM's margin (`v ≥ margin` in the dual QP)")
    ewc_lambda: Number = Field(
        1.0,
        ge=0,
        description="EWC's λ (with SGD, `lr·λ·Σ_k F_k` beyond about 2 diverges: λ = 10 did on permuted MNIST)",
    )
    ewc_fisher: Literal["empirical", "memory_batch"] = Field(
        "empirical",
        description="EWC's Fisher of a finished task: `empirical`, `F = 1/N Σ_n (∇ℓ_n)²` over its training samples; "
        "`memory_batch`, `F = (∇ 1/M Σ_n ℓ_n)²` over `memory_per_task` random samples of it, as Lopez-Paz & Ranzato's "
        "GEM code computes it (whose penalty has no ½: its λ is half of ours)",
    )
    epochs: PositiveInt = Field(1, description="SGD passes over each task")
    lr: PositiveFloat = Field(0.1, description="SGD's learning rate")
    batch_size: PositiveInt = Field(10, description="SGD's minibatch size")
    distill: MemoryDistillConfig = Field(
        MemoryDistillConfig(), description="how a distilled memory is distilled (`memory: distilled`)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ContinualConfig":
        if self.memory == "distilled" and self.learner != "gem":
            raise ValueError("memory: distilled is GEM's episodic memory; set learner: gem")
        if self.ewc_fisher != "empirical" and self.learner != "ewc":
            raise ValueError(f"ewc_fisher: {self.ewc_fisher} is EWC's; set learner: ewc")
        if self.memory == "distilled" and self.memory_per_task % self.distill.steps:
            raise ValueError(
                f"memory_per_task = {self.memory_per_task} cannot be split into distill.steps = {self.distill.steps} equal steps"
            )
        return self


class Config(Section):
    """The whole experiment. Every key has a default; a config file names only what it
    changes, and an unknown key is an error that names the closest valid key."""

    method: Literal[("distill", "continual", *KERNEL_METHODS, *BASELINES)] = Field(  # type: ignore[valid-type]
        "distill",
        description="`distill` (the bilevel method of Wang et al.), `kip` or `label_solve` (kernel ridge regression, "
        "Nguyen et al.; see `kernel` and `kip`), `continual` (a task stream with GEM/EWC; see `continual`) or a "
        "baseline (`random_real`, `optimized_real`, `kmeans`, `average_real`, `knn`; see `baseline`)",
    )
    seed: Integer = Field(
        0, ge=0, lt=2**32, description="seeds every random stream (data init, initial weights, batches)"
    )
    dataset: DatasetConfig = Field(DatasetConfig(), description="the dataset and its options")
    model: ModelConfig = Field(ModelConfig(), description="the architecture and its options")
    init: InitConfig = Field(InitConfig(), description="the initial weights")
    synthetic: SyntheticConfig = Field(SyntheticConfig(), description="the distilled set")
    outer: OuterConfig = Field(OuterConfig(), description="the outer loop of `distill`")
    eval: EvalConfig = Field(EvalConfig(), description="the evaluation")
    run: RunConfig = Field(RunConfig(), description="logging, checkpoints and the device")
    pretrain: PretrainConfig = Field(PretrainConfig(), description="`distill pretrain`")
    baseline: BaselineConfig = Field(BaselineConfig(), description="the baselines")
    train: FullTrainConfig = Field(FullTrainConfig(), description="`distill train` (full-data training)")
    kernel: KernelConfig = Field(KernelConfig(), description="the kernel of `kip` and `label_solve`")
    kip: KipConfig = Field(KipConfig(), description="`kip` and `label_solve`")
    continual: ContinualConfig | None = Field(
        None, description="`method: continual` only (null: its defaults with `method: continual`)"
    )

    def fingerprint(self) -> str:
        """A short hash of every setting: a checkpoint records the one of the run that wrote it.
        Settings at their defaults are left out, so that a key added to the schema later (at
        its default) does not make the checkpoints of earlier runs foreign."""
        text = json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @model_validator(mode="after")
    def _label_lr_needs_learned_labels(self) -> "Config":
        if self.outer.label_lr is not None and self.synthetic.labels == "hard":
            raise ValueError("outer.label_lr applies to learned labels: set synthetic.labels: learned")
        return self

    @model_validator(mode="after")
    def _continual_section(self) -> "Config":
        if self.method == "continual" and self.continual is None:
            self.continual = ContinualConfig()
        if self.method != "continual" and self.continual is not None:
            raise ValueError("the continual section goes with method: continual")
        return self


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The validated config of ``path`` (the built-in defaults, i.e. experiments/digits.yaml,
    when None), with
    ``overrides`` such as ``["outer.epochs=5", "model.name=mlp"]`` applied on top."""
    raw = read_yaml(path)
    for item in overrides or []:
        _apply_override(raw, item)
    return validate(raw)


def validate(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise UserError(_describe(error)) from None


def read_yaml(path: str | Path | None) -> dict[str, Any]:
    """The mapping a YAML config file holds (``{}`` for None). Only plain YAML is read (no
    tags that build Python objects); a key given twice in one mapping is an error."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read config {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise UserError(f"config {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    data = parse_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of config keys, not {type(data).__name__}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (the first would be ignored)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 1e-3 as a string; YAML 1.2 and every user read it as a number.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed as safe YAML; any YAML error is a one-line ``UserError`` naming ``source``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(f"{source} is not valid YAML{at}: {' '.join(str(problem).split())}") from None
    except RecursionError:
        raise UserError(f"{source} is nested too deeply to be a config") from None


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """``a.b=value``: set ``raw['a']['b']`` to the YAML-parsed ``value``."""
    key, sep, value = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override {item!r} must look like key.subkey=value")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {item!r}: {part} is not a section")
    node[leaf] = parse_yaml(value, f"--set {item}")


def _describe(error: ValidationError) -> str:
    """Every problem pydantic found, on one line: ``invalid config: key: what (got value); ...``."""
    problems = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"])
        if problem["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'{closest(where, _valid_keys())}")
        else:
            got = repr(problem.get("input"))
            problems.append(f"{where or 'config'}: {problem['msg']} (got {got if len(got) <= 80 else got[:77] + '...'})")
    return "invalid config: " + "; ".join(problems)


def _valid_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        sub = next((a for a in get_args(field.annotation) if a is not type(None)), field.annotation)
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.extend(_valid_keys(sub, f"{prefix}{name}."))
    return keys
