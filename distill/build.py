"""From a config to what a run needs: the dataset, the model as a function of its weights,
the real data on the run's device, the initial-weight sampler and the synthetic data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config
from .datasets import ArrayDataset, load_dataset
from .distiller import RealData
from .errors import UserError
from .functional import FunctionalNet
from .inits import InitSampler, make_sampler
from .models import build_model
from .pool import Architecture, load_pool
from .seeds import Stream, generator
from .synthetic import DistilledData, initial_soft_labels, read_soft_labels, round_robin_labels


@dataclass
class Setup:
    """Everything a run needs, built from its config."""

    config: Config
    device: torch.device
    dataset: ArrayDataset
    net: FunctionalNet
    real: RealData


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def build(config: Config) -> Setup:
    """Load the dataset, check the config against it, and build the model."""
    dataset = load_dataset(config.dataset.name, root=config.dataset.root, download=config.dataset.download, **config.dataset.options)
    return setup_for(config, dataset)


def setup_for(config: Config, dataset: ArrayDataset) -> Setup:
    """Check the config against ``dataset`` and build the model, on the config's device."""
    device = resolve_device(config.run.device)
    if config.synthetic.labels == "hard" and config.synthetic.n < dataset.num_classes:
        raise UserError(
            f"synthetic.n = {config.synthetic.n} is fewer than the {dataset.num_classes} classes of "
            f"{dataset.name}: hard labels need at least one sample per class (learned labels do not: "
            f"synthetic.labels: learned)"
        )
    module = build_model(config.model.name, dataset.input_shape, dataset.num_classes, **config.model.options).to(device)
    real = RealData(*(t.to(device) for t in (dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y)))
    return Setup(config, device, dataset, FunctionalNet.of(module), real)


def new_distilled_data(setup: Setup) -> DistilledData:
    syn, ds = setup.config.synthetic, setup.dataset
    real = (ds.train_x, ds.train_y) if syn.data_init == "real" else None
    gen = generator(setup.config.seed, Stream.DATA)
    soft = None
    if syn.labels == "learned":
        if syn.label_init == "file":
            soft = read_soft_labels(syn.label_file, syn.n, ds.num_classes)
        else:
            classes = round_robin_labels(syn.n, ds.num_classes)
            soft = initial_soft_labels(classes, ds.num_classes, syn.label_init, syn.label_smoothing, gen, syn.label_softmax)
    data = DistilledData.create(
        syn.n, syn.steps, syn.epochs, ds.input_shape, ds.num_classes, syn.lr_init, real, gen, soft, syn.label_softmax
    )
    return data.to(setup.device)


def sampler_of(setup: Setup, state: dict | None = None) -> InitSampler:
    init = setup.config.init
    restored = state is not None and "theta" in state  # a fixed network needs no pool once it is saved
    pool = pretrained_pool(setup) if init.pool is not None and not restored else None
    return make_sampler(init.kind, setup.net, init.scheme, init.gain, setup.config.seed, state,
                        pool=pool, train_networks=init.train_networks, network=init.network)


def pretrained_pool(setup: Setup) -> torch.Tensor:
    """The weights of ``init.pool``, checked against this run's model, input shape and classes
    and against the split the config asks for."""
    config, ds = setup.config, setup.dataset
    pool = load_pool(config.init.pool)
    pool.check(Architecture.of(config.model.name, config.model.options, ds.input_shape, ds.num_classes, setup.net.num_params), config.init.pool)
    n, init = len(pool.thetas), config.init
    if init.kind == "pretrained_fixed" and init.network >= n:
        raise UserError(f"init.network = {init.network}, but the pool {init.pool} holds {n} networks (0 to {n - 1})")
    if init.kind == "pretrained_random":
        if init.train_networks >= n:
            raise UserError(f"init.train_networks = {init.train_networks} leaves no held-out network in the pool {init.pool} "
                            f"of {n}; use fewer (the rest are held out for evaluation)")
        if config.outer.models_per_iteration > init.train_networks:
            raise UserError(f"outer.models_per_iteration = {config.outer.models_per_iteration} is more than the "
                            f"{init.train_networks} training networks of the pool")
    return pool.thetas
