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

from .choices import BACKGRAD_MODES, BASELINES, LR_GRID, MEMORIES, SCHEMES
from .errors import UserError, closest


# Numbers are strict: a YAML ``true`` is not the number 1, nor ``"3"`` the integer 3.
Number = Annotated[float, Strict()]
Integer = Annotated[int, Strict()]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
MAX_NETWORKS = 100_000
MAX_LR = 1e6  # a larger step size is a typo (and overflows float32 through softplus⁻¹)
Networks = Annotated[int, Strict(), Field(ge=1, le=MAX_NETWORKS)]  # a count of networks (or of sets) to train


class Section(BaseModel):
    """A config section: unknown keys and non-finite numbers (``.inf``, ``.nan``) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class DatasetConfig(BaseModel):
    """``name``, ``root``, ``download`` and the dataset's own options (text datasets:
    ``glove``, ``embed_dim``, ``max_len``, ``max_vocab``, ...), passed through."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = "digits"
    root: str = "data"
    download: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(BaseModel):
    """``name`` and the architecture's own options (e.g. ``hidden`` for mlp), passed through."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = "lenet"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class InitConfig(Section):
    kind: Literal["fixed", "random", "pretrained_fixed", "pretrained_random"] = "fixed"
    scheme: Literal[SCHEMES] = "xavier"  # type: ignore[valid-type]
    gain: Number = Field(1.0, ge=0)
    pool: str | None = None  # pretrained_*: the pool file written by `distill pretrain`
    train_networks: PositiveInt | None = None  # pretrained_random: the pool's first N train, the rest are held out
    network: Integer = Field(0, ge=0)  # pretrained_fixed: which network of the pool

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
    n: PositiveInt = 100
    steps: PositiveInt = 10
    epochs: PositiveInt = 3
    lr_init: Number = Field(0.02, gt=0, le=MAX_LR)
    data_init: Literal["normal", "real"] = "real"
    labels: Literal["hard", "learned"] = "hard"
    label_init: Literal["one_hot", "smoothed", "normal", "file"] = "one_hot"
    label_smoothing: Number = Field(0.1, ge=0, le=1)
    label_file: str | None = None
    label_softmax: bool = False
    freeze_data: bool = False

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
    epochs: PositiveFloat = 400
    batch_size: PositiveInt = 1437  # all of digits' training images (a larger batch is capped at the training set)
    lr: PositiveFloat = 0.02
    label_lr: PositiveFloat | None = None  # Adam's lr for learned labels (None: lr)
    betas: tuple[Number, Number] = (0.5, 0.999)
    decay_epochs: PositiveFloat = 100
    decay_factor: PositiveFloat = 0.5
    models_per_iteration: Networks = 1
    backgrad: Literal[BACKGRAD_MODES] = "stored"  # type: ignore[valid-type]
    clip_grad_norm: PositiveFloat | None = None  # rescale the back-gradient to at most this total norm (None: never)

    @model_validator(mode="after")
    def _betas_in_range(self) -> "OuterConfig":
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        return self


class EvalConfig(Section):
    models: Networks = 200
    every: Integer = Field(0, ge=0)
    models_during: Networks = 10
    batch_size: PositiveInt = 2048
    select: Literal["last", "best_train"] = "last"
    select_samples: PositiveInt = 10000

    @model_validator(mode="after")
    def _selection_needs_evaluations(self) -> "EvalConfig":
        if self.select == "best_train" and self.every == 0:
            raise ValueError("eval.select: best_train chooses among the periodic evaluations; set eval.every > 0")
        return self


class RunConfig(Section):
    log_every: PositiveInt = 10
    checkpoint_every: PositiveInt = 100
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True


class PretrainConfig(Section):
    """``distill pretrain``: ``networks`` networks trained on the source ``dataset`` (the
    config's own dataset when omitted), ``models_at_once`` at a time with ``vmap``."""

    dataset: DatasetConfig | None = None
    networks: Networks = 20
    models_at_once: Networks = 10
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: PositiveFloat = 0.001
    momentum: Number = Field(0.0, ge=0, lt=1)
    weight_decay: Number = Field(0.0, ge=0)


class BaselineConfig(Section):
    """The baselines of ``distill baseline`` (Wang et al. Sec. 4): how many random sets, the
    (learning rate, epochs) grid, and the cheap search that picks its best cell."""

    sets: Networks = 10
    candidates: Networks = 50
    keep: Number = Field(0.2, gt=0, le=1)
    lrs: list[PositiveFloat] = Field(list(LR_GRID), min_length=1)
    epochs: list[PositiveInt] = Field([1, 3, 5], min_length=1)
    search_models: Networks = 10
    search_samples: PositiveInt = 2000
    memory: Literal[MEMORIES] = "random_real"  # type: ignore[valid-type]
    distilled_run: str | None = None


class FullTrainConfig(Section):
    """``distill train``: the model trained on the whole training set (Adam), for the distillation ratio."""

    epochs: PositiveInt = 5
    lr: PositiveFloat = 1e-3
    batch_size: PositiveInt = 128
    cache: str = "runs/full_data.json"


class StreamConfig(Section):
    """A task stream of ``distill.datasets.streams``: permuted streams draw
    ``samples_per_task`` images per task; split streams cut the classes into ``tasks``
    groups of ``classes_per_task`` (and keep at most ``samples_per_task`` samples)."""

    name: str = "permuted_digits"
    tasks: PositiveInt = 5
    samples_per_task: PositiveInt | None = 200
    classes_per_task: PositiveInt | None = None


class MemoryDistillConfig(Section):
    """How a task's training data is distilled into its memory (``memory: distilled``):
    ``memory_per_task`` samples in ``steps`` steps for ``epochs`` epochs, from random
    initial weights (``init.scheme``), with the outer loop's settings."""

    steps: PositiveInt = 1
    epochs: PositiveInt = 3
    lr_init: Number = Field(0.02, gt=0, le=MAX_LR)
    data_init: Literal["normal", "real"] = "real"
    outer: OuterConfig = OuterConfig(epochs=100, batch_size=1000, lr=0.01, decay_epochs=50, models_per_iteration=4)


class ContinualConfig(Section):
    """``method: continual``: a learner trained on a stream of tasks (GEM, EWC, plain)."""

    stream: StreamConfig = StreamConfig()
    learner: Literal["single", "ewc", "gem"] = "gem"
    memory: Literal["real", "distilled"] = "real"
    memory_per_task: PositiveInt = 10
    memory_strength: Number = Field(0.5, ge=0)
    ewc_lambda: Number = Field(1.0, ge=0)
    epochs: PositiveInt = 1
    lr: PositiveFloat = 0.1
    batch_size: PositiveInt = 10
    distill: MemoryDistillConfig = MemoryDistillConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "ContinualConfig":
        if self.memory == "distilled" and self.learner != "gem":
            raise ValueError("memory: distilled is GEM's episodic memory; set learner: gem")
        if self.memory == "distilled" and self.memory_per_task % self.distill.steps:
            raise ValueError(
                f"memory_per_task = {self.memory_per_task} cannot be split into distill.steps = {self.distill.steps} equal steps"
            )
        return self


class Config(Section):
    method: Literal[("distill", "continual", *BASELINES)] = "distill"  # type: ignore[valid-type]
    seed: Integer = Field(0, ge=0, lt=2**32)
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    init: InitConfig = InitConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    outer: OuterConfig = OuterConfig()
    eval: EvalConfig = EvalConfig()
    run: RunConfig = RunConfig()
    pretrain: PretrainConfig = PretrainConfig()
    baseline: BaselineConfig = BaselineConfig()
    train: FullTrainConfig = FullTrainConfig()
    continual: ContinualConfig | None = None

    def fingerprint(self) -> str:
        """A short hash of every setting: a checkpoint records the one of the run that wrote it."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
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
