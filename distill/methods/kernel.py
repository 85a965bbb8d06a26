"""``method: kip`` and ``method: label_solve`` (Nguyen et al.): the kernel methods as a run
directory. Set-up (preprocessing fitted on the training split, the held-out samples, the
class-balanced support set), the engine (``distill.kip``), then the evaluation: kernel
ridge-regression accuracy on the whole test split, and finite networks of the config's
model trained on the support set (transfer); ``support.pt``, ``grid.png`` and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..build import resolve_device
from ..config import Config
from ..datasets import ArrayDataset, load_dataset
from ..distributed import SOLO, Group
from ..errors import DivergenceError, UserError
from ..evaluate import Accuracy, accuracies
from ..functional import FunctionalNet
from ..inits import RandomInit
from ..kernels import KernelSpec
from ..kip import KipSettings, SolveSettings, Targets, kip, label_solve
from ..krr import krr_accuracy
from ..models import build_model
from ..preprocess import Preprocessing
from ..rundir import RunDir
from ..seeds import Stream, generator
from ..support import SupportSet
from ..viz import save_support_grid
from .bilevel import check_recordable


@dataclass
class KernelSetup:
    """A kernel run's inputs: the dataset, the kernel of the KIP steps and the one that
    measures KRR accuracy (they differ in ``kernel.eval_networks``), the preprocessing fitted on the
    training split, the targets (training split less the held-out samples) and the
    preprocessed test split, on the run's device."""

    config: Config
    device: torch.device
    dataset: ArrayDataset
    kernel: KernelSpec
    eval_kernel: KernelSpec
    preprocessing: Preprocessing
    targets: Targets
    test_x: Tensor
    test_y: Tensor


def kernel_spec(config: Config, evaluation: bool = False) -> KernelSpec:
    """The config's kernel: of the KIP steps, or (``evaluation``) the one that measures KRR
    accuracy, with ``kernel.eval_networks`` random networks where it is set."""
    k = config.kernel
    networks = k.eval_networks if evaluation and k.eval_networks is not None else k.networks
    return KernelSpec(name=k.name, kind=k.kind, depth=k.depth, w_std=k.w_std, b_std=k.b_std, width=k.width,
                      networks=networks, block=k.block)


def kernel_setup(config: Config) -> KernelSetup:
    """Load and check everything a kernel run needs, before it writes anything."""
    device = resolve_device(config.run.device)
    ds = load_dataset(config.dataset.name, root=config.dataset.root, download=config.dataset.download, **config.dataset.options)
    spec = kernel_spec(config)
    spec.check(ds.input_shape)
    opts = config.kip
    if config.synthetic.n % ds.num_classes:
        n, c = config.synthetic.n, ds.num_classes
        raise UserError(f"synthetic.n = {n} is not a multiple of the {c} classes of {ds.name}: the support set is class "
                        f"balanced; use a multiple, e.g. {max(1, round(n / c)) * c}")
    if opts.augment and ds.is_text:
        raise UserError("kip.augment flips and crops images; this dataset's samples are not images")
    order = torch.randperm(len(ds.train_y), generator=generator(config.seed, Stream.KIP_HOLDOUT))
    held_out = min(opts.holdout, len(order) // 5)
    held, kept = order[:held_out], order[held_out:]
    raw_x, y = ds.train_x[kept], ds.train_y[kept]
    prep = Preprocessing.fit(raw_x, opts.preprocess, opts.zca_reg)
    x = prep(raw_x)
    targets = Targets(x.to(device), y.to(device), ds.num_classes, prep(ds.train_x[held]).to(device), ds.train_y[held].to(device),
                      raw_x=raw_x.to(device) if opts.augment else None, transform=prep)
    if config.method == "kip":
        targets.check_batch(opts.target_batch)
    return KernelSetup(config, device, ds, spec, kernel_spec(config, evaluation=True), prep, targets, prep(ds.test_x).to(device),
                       ds.test_y.to(device))


def new_support(setup: KernelSetup) -> SupportSet:
    """The class-balanced initial support set: real target samples or N(0, 1) noise."""
    config, t = setup.config, setup.targets
    gen = generator(config.seed, Stream.DATA)
    learn = config.method == "kip" and config.synthetic.labels == "learned"
    if config.synthetic.data_init == "real":
        support = SupportSet.from_real(t.x.cpu(), t.y.cpu(), config.synthetic.n, t.num_classes, learn, gen)
    else:
        support = SupportSet.from_noise(tuple(t.x.shape[1:]), config.synthetic.n, t.num_classes, learn, gen)
    return support.to(setup.device)


def kip_settings(config: Config) -> KipSettings:
    k, r = config.kip, config.run
    return KipSettings(steps=k.steps, lr=k.lr, decay_steps=k.decay_steps, decay_factor=k.decay_factor,
                       betas=k.betas, target_batch=k.target_batch, reg=k.reg, augment=tuple(k.augment),
                       augment_fraction=k.augment_fraction, block=k.block, seed=config.seed, log_every=r.log_every,
                       checkpoint_every=r.checkpoint_every, progress=r.progress, fingerprint=config.fingerprint())


def solve_settings(config: Config) -> SolveSettings:
    k, r = config.kip, config.run
    return SolveSettings(reg=k.reg, block=k.block, seed=config.seed, log_every=r.log_every, checkpoint_every=r.checkpoint_every,
                         progress=r.progress, fingerprint=config.fingerprint())


def run(
    config: Config, run: RunDir, resume: bool = False, overwrite: bool = False, on_iteration: Callable[[int], None] | None = None,
    group: Group = SOLO,
) -> dict[str, Any]:
    """Run KIP or Label Solve as ``config`` says into ``run`` (checked by ``run_experiment``).
    Over several processes (``group``) they share the kernel blocks of every step; rank 0
    alone evaluates and writes."""
    checkpoint = run.read_checkpoint({"iteration", "seconds"}) if resume else None
    setup = kernel_setup(config)
    support = new_support(setup)
    run.create(overwrite)
    if not resume:
        run.write_config(config.model_dump(mode="json"))
    if config.method == "kip":
        kip(kip_settings(config), setup.kernel, support, setup.targets, run, checkpoint, on_iteration, group=group,
            eval_kernel=setup.eval_kernel)
    else:
        label_solve(solve_settings(config), setup.eval_kernel, support, setup.targets, run, checkpoint, on_iteration, group=group)
    if not group.main:
        return {"method": config.method}
    support.save(run.support)
    evaluation_started = time.perf_counter()
    krr, transfer = evaluate_support(setup, support, config.kip.transfer.models)
    eval_seconds = time.perf_counter() - evaluation_started
    last = run.read_log()[-1]
    if len(setup.dataset.input_shape) == 3:
        save_support_grid(run.grid, support.x.cpu(), support.y.detach().cpu(), support.learns_labels, setup.dataset.class_names)
    metrics = {
        "method": config.method,
        "dataset": config.dataset.name,
        "model": config.model.name,
        "init": None,
        "n_distilled": support.n,
        "steps": int(last["iteration"]) if config.method == "kip" else None,
        "epochs": None,
        "kernel": f"{config.kernel.name}-{config.kernel.depth} {config.kernel.kind}",
        "kernel_networks": networks_of(setup.eval_kernel),
        "krr_acc": krr.as_dict(),
        "transfer_acc": transfer.as_dict(),
        "test_acc": krr.as_dict(),
        "final_loss": float(last["loss"]),
        "targets_seen": int(last["targets"]),
        "seconds": float(last["seconds"]),
        "eval_seconds": round(eval_seconds, 2),
        "threads": torch.get_num_threads(),
        "device": str(setup.device),
        "processes": group.size,
    }
    run.write_metrics(metrics)
    return metrics


def evaluate_support(setup: KernelSetup, support: SupportSet, models: int) -> tuple[Accuracy, Accuracy]:
    """The KRR test accuracy of the support set (one value: ``n = 1``) with the evaluation
    kernel, and the test accuracy of ``models`` finite networks trained on it."""
    kernel = setup.eval_kernel.draw(generator(setup.config.seed, Stream.KIP_EVAL_KERNEL))
    krr = krr_accuracy(kernel, support.x.detach(), support.y.detach(), setup.test_x, setup.test_y, setup.config.kip.reg,
                       setup.config.kip.block)
    return Accuracy(krr, 0.0, 1), transfer_accuracy(setup, support, models)


def transfer_accuracy(setup: KernelSetup, support: SupportSet, models: int) -> Accuracy:
    """Train ``models`` random networks of the config's model on the support set (full
    batch, ``kip.transfer``) and test them: the mean ± std of their test accuracies.

    ``mse``: ``ℓ(θ) = 1/(2n) Σ_i ‖f(x_i; θ) − y_i‖²`` against the support labels;
    ``xent``: the cross-entropy with the class ``argmax y_i``. The ``N`` networks are one
    stacked ``[N, P]`` tensor trained with ``vmap``."""
    config, t = setup.config, setup.config.kip.transfer
    module = build_model(config.model.name, setup.dataset.input_shape, setup.dataset.num_classes, **config.model.options)
    net = FunctionalNet.of(module.to(setup.device))
    stack = torch.nn.Parameter(RandomInit(net, config.init.scheme, config.init.gain, config.seed).held_out(models).to(setup.device))
    optimizer = torch.optim.SGD([stack], lr=t.lr) if t.optimizer == "sgd" else torch.optim.Adam([stack], lr=t.lr)
    x, y = support.x.detach(), support.y.detach()
    logits_of = torch.func.vmap(net.logits, in_dims=(0, None))
    for step in range(t.steps):
        outputs = logits_of(stack, x)
        if t.loss == "mse":
            loss = 0.5 * (outputs - y).pow(2).sum(-1).mean(-1).sum()
        else:
            loss = F.cross_entropy(outputs.flatten(0, 1), y.argmax(-1).repeat(models), reduction="sum") / len(y)
        if not torch.isfinite(loss):
            raise DivergenceError(f"the transfer networks diverged at step {step + 1} of {t.steps}; lower kip.transfer.lr "
                                  f"(now {t.lr:g})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return Accuracy.of(accuracies(net, stack.detach(), setup.test_x, setup.test_y, config.eval.batch_size))


@dataclass(frozen=True)
class KernelEvaluation:
    """``distill eval`` of a kernel run: the KRR test accuracy, the transfer networks' test
    accuracies, and (``convnet_rf``) the random networks of the kernel draw that measured KRR."""

    krr_acc: Accuracy
    transfer_acc: Accuracy
    kernel_networks: int | None


def evaluate(run: RunDir, config: Config, models: int | None = None, kernel_networks: int | None = None) -> KernelEvaluation:
    """Re-evaluate a finished kernel run: its KRR test accuracy and ``models`` transfer
    networks (default ``kip.transfer.models``), recorded in metrics.json. ``kernel_networks``
    (a KIP run with ``convnet_rf``): measure KRR with a draw of that many random networks
    instead of ``kernel.eval_networks``."""
    metrics = run.read_metrics()
    check_recordable(run, metrics)
    if kernel_networks is not None:
        config = with_eval_networks(config, kernel_networks, run)
    setup = kernel_setup(config)
    support = SupportSet.load(run.support)
    support.check_fits(tuple(setup.targets.x.shape[1:]), setup.targets.num_classes, run.support)
    started = time.perf_counter()
    krr, transfer = evaluate_support(setup, support.to(setup.device), models or config.kip.transfer.models)
    networks = networks_of(setup.eval_kernel)
    entry = {"models": transfer.n, "krr_acc": krr.as_dict(), "transfer_acc": transfer.as_dict(),
             "seconds": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads()}
    metrics.setdefault("evaluations", []).append(entry if networks is None else {**entry, "kernel_networks": networks})
    try:
        run.write_metrics(metrics)
    except OSError as error:
        raise UserError(f"the evaluation (KRR {100 * krr.mean:.2f}%, transfer {transfer}) could not be recorded in "
                        f"{run.metrics}: {error.strerror}") from None
    return KernelEvaluation(krr, transfer, networks)


def networks_of(kernel: KernelSpec) -> int | None:
    """The random networks of a ``convnet_rf`` kernel's draw; None for an exact kernel."""
    return kernel.networks if kernel.name == "convnet_rf" else None


def with_eval_networks(config: Config, networks: int, run: RunDir) -> Config:
    """``config`` whose KRR accuracy is measured with ``networks`` random networks; only a KIP
    run of the random-feature kernel has a kernel draw to change."""
    if config.kernel.name != "convnet_rf":
        raise UserError(f"--kernel-networks sets the random networks of a convnet_rf kernel; {run.path} uses the exact "
                        f"{config.kernel.name} kernel, which has none")
    if config.method != "kip":
        raise UserError(f"{run.path} is a Label Solve run: its labels were solved with its own kernel draw, so a draw "
                        f"of other networks would not measure them; set kernel.eval_networks and run it again")
    return config.model_copy(update={"kernel": config.kernel.model_copy(update={"eval_networks": networks})})
