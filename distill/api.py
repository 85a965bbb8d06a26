"""The scikit-learn-style front end: ``Distiller(...).fit(x, y).score(x_test, y_test)``.

    >>> from distill import Distiller
    >>> d = Distiller(model="lenet", n=10, steps=1, epochs=3, max_iter=200).fit(x_train, y_train)
    >>> d.score(x_test, y_test)      # mean test accuracy of networks trained on the distilled data
    >>> d.data_                      # the DistilledData; d.save(path), Distiller.load(path)

The parameters are the YAML config's (``docs/config.md``), with its defaults, validated by
the same pydantic schema, and scikit-learn's names where they apply: ``random_state`` is ``seed``,
``verbose`` the progress bar, ``max_iter`` the number of outer iterations. ``fit`` takes
tensors (``x`` [N, C, H, W], or [N, 1, L, D] for embedded text, already normalised; ``y``
integer labels 0..C−1) or a dataset name (``fit("mnist")``, read from ``dataset_root``).
Nothing is written to disk unless ``save`` is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .build import build, new_distilled_data, sampler_of, setup_for
from .distributed import join
from .config import Config, validate
from .datasets import ArrayDataset
from .distiller import distill
from .errors import UserError
from .evaluate import evaluate
from .files import load_tensors, save_tensors
from .methods.bilevel import outer_settings
from .synthetic import DistilledData

FORMAT = "distill-distiller"


class Distiller:
    """Dataset distillation as an estimator: learn ``n`` synthetic samples in ``steps`` steps,
    trained on for ``epochs`` epochs with learned step sizes, for ``init`` initial networks
    of ``model`` (Wang et al.; ``labels="learned"``: soft labels, SLDD)."""

    def __init__(
        self,
        model: str | None = None,
        n: int | None = None,
        steps: int | None = None,
        epochs: int | None = None,
        init: str | None = None,
        labels: str | None = None,
        max_iter: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        models_per_iteration: int | None = None,
        eval_models: int | None = None,
        random_state: int = 0,
        verbose: bool = False,
        device: str | None = None,
        dataset_root: str | None = None,
        **options: Any,
    ) -> None:
        """Every parameter left at None takes the YAML config's default (``docs/config.md``):
        ``model`` model.name, ``n``/``steps``/``epochs``/``labels`` synthetic.*, ``init``
        init.kind, ``lr``/``batch_size``/``models_per_iteration`` outer.*, ``eval_models``
        eval.models, ``device`` run.device, ``dataset_root`` dataset.root; ``max_iter`` None
        runs outer.epochs passes. ``random_state`` is the seed, ``verbose`` the progress bar."""
        self.model, self.n, self.steps, self.epochs, self.init, self.labels = model, n, steps, epochs, init, labels
        self.max_iter, self.lr, self.batch_size, self.models_per_iteration = max_iter, lr, batch_size, models_per_iteration
        self.eval_models, self.random_state, self.verbose, self.device = eval_models, random_state, verbose, device
        self.dataset_root, self.options = dataset_root, options
        self.config()  # a bad parameter is an error now, not after fit's work

    def get_params(self) -> dict[str, Any]:
        return {"model": self.model, "n": self.n, "steps": self.steps, "epochs": self.epochs, "init": self.init,
                "labels": self.labels, "max_iter": self.max_iter, "lr": self.lr, "batch_size": self.batch_size,
                "models_per_iteration": self.models_per_iteration, "eval_models": self.eval_models,
                "random_state": self.random_state, "verbose": self.verbose, "device": self.device,
                "dataset_root": self.dataset_root, **self.options}

    def config(self, dataset: str = "digits", train_size: int | None = None) -> Config:
        """The equivalent YAML config (``distill run`` with it learns the same data). Extra
        keyword options are the model's (``hidden=[32]`` for ``mlp``) or, with ``__`` for
        ``.``, any config key (``outer__decay_epochs=50``)."""
        given = {
            ("dataset", "root"): self.dataset_root, ("model", "name"): self.model, ("init", "kind"): self.init,
            ("synthetic", "n"): self.n, ("synthetic", "steps"): self.steps, ("synthetic", "epochs"): self.epochs,
            ("synthetic", "labels"): self.labels, ("outer", "lr"): self.lr, ("outer", "batch_size"): self.batch_size,
            ("outer", "models_per_iteration"): self.models_per_iteration, ("eval", "models"): self.eval_models,
            ("run", "device"): self.device,
        }
        raw: dict[str, Any] = {"seed": self.random_state, "dataset": {"name": dataset}, "model": {}, "outer": {},
                               "run": {"progress": self.verbose}}
        for (section, key), value in given.items():
            if value is not None:
                raw.setdefault(section, {})[key] = value
        for key, value in self.options.items():  # hidden=[32]: a model option; outer__decay_epochs=50: a config key
            *sections, leaf = key.split("__")
            node = raw if sections else raw["model"]
            for section in sections:
                node = node.setdefault(section, {})
            node[leaf] = value
        if self.max_iter is not None and (not isinstance(self.max_iter, int) or self.max_iter < 1):
            raise UserError(f"max_iter must be a positive number of outer iterations, got {self.max_iter!r}")
        if self.max_iter is not None and train_size is not None:
            batch_size = validate(raw).outer.batch_size
            per_epoch = train_size // min(batch_size, train_size)
            raw["outer"]["epochs"] = (self.max_iter - 0.5) / per_epoch  # ceil(epochs × per_epoch) = max_iter
        return validate(raw)

    def fit(self, x: Tensor | str, y: Tensor | None = None) -> "Distiller":
        """Learn the distilled data from the training set ``(x, y)``, or from the training
        split of the dataset named ``x``. Under torchrun, the processes share the work
        (``distill.distributed``) and each ends with the same data."""
        if isinstance(x, str):
            if y is not None:
                raise UserError("fit(name) takes a dataset name alone; fit(x, y) takes tensors")
            size = len(build(self.config(x)).dataset.train_y) if self.max_iter is not None else None
            setup = build(self.config(x, size))
        else:
            dataset = tensor_dataset(x, y)
            setup = setup_for(self.config("tensors", len(dataset.train_y)), dataset)
        self.setup_ = setup
        self.sampler_ = sampler_of(setup)
        self.data_ = new_distilled_data(setup)
        group = join(setup.config.run.device, setup.config.run.timeout)
        distill(outer_settings(setup.config), self.data_, setup.net, self.sampler_, setup.real, group=group)
        return self

    def score(self, x: Tensor, y: Tensor) -> float:
        """The mean accuracy on ``(x, y)``, in [0, 1], of ``eval_models`` held-out networks
        (fixed init: the one network) trained on the distilled data as it was learned."""
        self._check_fitted()
        x, y = check_tensors(x, y, self.setup_.dataset.input_shape, self.setup_.dataset.num_classes)
        thetas = self.sampler_.held_out(self.setup_.config.eval.models).to(self.setup_.device)
        result = evaluate(self.setup_.net, self.data_, thetas, x.to(self.setup_.device), y.to(self.setup_.device),
                          self.setup_.config.eval.batch_size)
        return float(result.test_acc.mean)

    def save(self, path: str | Path) -> None:
        """One ``.pt`` file (tensors and plain values only) that ``Distiller.load`` reads back."""
        self._check_fitted()
        ds = self.setup_.dataset
        save_tensors(path, {"format": FORMAT, "params": self.get_params(), "config": self.setup_.config.model_dump(mode="json"),
                            "data": self.data_.cpu().state_dict(), "sampler": self.sampler_.state_dict(),
                            "input_shape": list(ds.input_shape), "num_classes": ds.num_classes})
        self.data_.to(self.setup_.device)

    @classmethod
    def load(cls, path: str | Path) -> "Distiller":
        state = load_tensors(path, "the distiller file")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise UserError(f"{path} is not a file written by Distiller.save")
        params = dict(state["params"])
        distiller = cls(**params)
        config = validate(state["config"])
        shape, classes = tuple(state["input_shape"]), int(state["num_classes"])
        empty = torch.zeros(0, *shape)
        dataset = ArrayDataset("loaded", empty, torch.zeros(0, dtype=torch.long), empty, torch.zeros(0, dtype=torch.long),
                               classes, (0.0,) * shape[0], (1.0,) * shape[0], tuple(map(str, range(classes))))
        setup = setup_for(config, dataset)
        distiller.setup_ = setup
        distiller.sampler_ = sampler_of(setup, state["sampler"] or None)
        data = DistilledData.create(config.synthetic.n, config.synthetic.steps, config.synthetic.epochs, shape, classes,
                                    config.synthetic.lr_init, soft_labels=None if config.synthetic.labels == "hard" else
                                    torch.zeros(config.synthetic.n, classes), label_softmax=config.synthetic.label_softmax)
        data.load_state_dict(state["data"])
        distiller.data_ = data.to(setup.device)
        return distiller

    def _check_fitted(self) -> None:
        if not hasattr(self, "data_"):
            raise UserError("this Distiller is not fitted yet: call fit(x, y) first")

    def __repr__(self) -> str:
        return f"Distiller({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


def check_tensors(x: Any, y: Any, input_shape: tuple[int, ...] | None = None, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """``x`` as float32 [N, C, H, W] and ``y`` as int64 [N] labels, checked."""
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise UserError("x and y must be torch tensors (x: [N, C, H, W] floats, y: [N] integer labels)")
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not len(y):
        raise UserError(f"x must be [N, C, H, W] and y [N] with the same N >= 1; got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool or int(y.min()) < 0:
        raise UserError("y must hold integer class labels 0, 1, ..., C-1")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise UserError(f"x has samples of shape {tuple(x.shape[1:])}; the distiller was fitted on {tuple(input_shape)}")
    if num_classes is not None and int(y.max()) >= num_classes:
        raise UserError(f"y has label {int(y.max())}; the distiller was fitted on {num_classes} classes")
    if not torch.isfinite(x).all():
        raise UserError("x holds non-finite values")
    return x.float(), y.long()


def tensor_dataset(x: Any, y: Any) -> ArrayDataset:
    """Training tensors as an ArrayDataset (its test split is the training split: ``fit``
    never evaluates on it, ``score`` takes its own)."""
    x, y = check_tensors(x, y)
    classes = int(y.max()) + 1
    channels = x.shape[1]
    return ArrayDataset("tensors", x, y, x, y, classes, (0.0,) * channels, (1.0,) * channels, tuple(map(str, range(classes))))
