"""``method: continual``: a learner trained on a stream of tasks, into a run directory.

Writes ``config.yaml``, ``metrics.json`` (the contract's keys, ``test_acc`` being the
final average accuracy ACC over the tasks), ``continual.json`` (the accuracy matrix R,
ACC/BWT/FWT, seconds per task), ``continual.png`` (R as a heat map), ``curves.png`` (the
average accuracy after each task, redrawn after every task), and for GEM
``memory.pt`` (every task's memory) and, for a distilled memory, one distillation run
directory per task under ``memory/``; ``checkpoint.pt`` holds the state after the last
finished task, from which ``--resume`` continues.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm import tqdm

from ..config import Config
from ..curves import plot_curves
from ..datasets.streams import Task, load_stream
from ..errors import DivergenceError, UserError
from ..evaluate import accuracies
from ..build import resolve_device
from ..functional import FunctionalNet
from ..inits import init_weights
from ..models import build_model
from ..files import save_tensors, write_json
from ..report import continual_label
from ..rundir import RunDir
from ..seeds import Stream, generator
from ..viz import save_accuracy_matrix
from ..continual.learners import head_of, make_learner, train_task
from ..continual.memory import distilled_memory, real_memory
from ..continual.metrics import accuracy_after_each_task, summary



def check_memory(tasks: list[Task], memory_per_task: int, distilled: bool) -> None:
    """A memory cannot hold more samples than its task has, nor (distilled, hard labels)
    fewer samples than the task has classes."""
    for k, task in enumerate(tasks):
        if memory_per_task > len(task.train_y):
            raise UserError(
                f"continual.memory_per_task = {memory_per_task} is larger than task {k + 1}'s {len(task.train_y)} training samples"
            )
        if distilled and memory_per_task < len(task.classes):
            raise UserError(
                f"continual.memory_per_task = {memory_per_task} is fewer than the {len(task.classes)} classes of a task: "
                f"a distilled memory needs at least one sample per class"
            )


def task_accuracies(heads: list[FunctionalNet], tasks: list[Task], theta: Tensor, batch_size: int) -> Tensor:
    """The test accuracy of ``θ`` on every task, [T]."""
    device = theta.device
    return torch.stack([
        accuracies(head, theta[None], task.test_inputs().to(device), task.test_y.to(device), batch_size)[0]
        for head, task in zip(heads, tasks)
    ]).cpu()


CHECKPOINT_KEYS = {"tasks_done", "theta", "accuracy_matrix", "initial_accuracy", "train_seconds", "distill_seconds",
                   "learner", "shuffle", "memory_gen", "seconds"}


def run(
    config: Config, run: RunDir, resume: bool = False, overwrite: bool = False,
    on_iteration: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``config.continual.learner`` on the stream, task after task, into ``out``.

    After every task the state (weights, accuracy rows, learner memory, random streams)
    goes to ``checkpoint.pt``; ``resume`` continues from it (and a task's memory
    distillation from its own checkpoint) and ends exactly as an uninterrupted run;
    ``overwrite`` replaces the run files already in ``out`` (``run_experiment`` has refused
    a directory holding a run without either).
    ``on_iteration(k)`` is called after task ``k`` (1-based) is saved.
    """
    c = config.continual
    if resume:  # run_experiment has checked that the run's config.yaml is this config
        if run.metrics.exists():
            raise UserError(f"{run.path} has finished all its tasks; there is nothing to resume (see: distill show {run.path})")
        if not run.checkpoint.exists():
            raise UserError(f"{run.path} was interrupted before its first task ended, so it has no checkpoint; "
                            f"start it again with: distill run {run.config} -o {run.path} --overwrite")
    device = resolve_device(config.run.device)
    dataset, tasks = load_stream(
        c.stream.name, c.stream.tasks, c.stream.samples_per_task, c.stream.classes_per_task,
        seed=config.seed, root=config.dataset.root, download=config.dataset.download, **config.dataset.options,
    )
    check_memory(tasks, c.memory_per_task, c.memory == "distilled")
    checkpoint = run.read_checkpoint(CHECKPOINT_KEYS, map_location=device) if resume else None
    if checkpoint is not None and checkpoint.get("config", config.fingerprint()) != config.fingerprint():
        raise UserError(f"the checkpoint {run.checkpoint} was written by a run of another config{run.restart_advice()}")
    run.create(overwrite)
    run.write_config(config.model_dump(mode="json"))

    module = build_model(config.model.name, dataset.input_shape, dataset.num_classes, **config.model.options).to(device)
    heads = [head_of(module, task.classes) for task in tasks]
    learner = make_learner(c.learner, c.memory_strength, c.ewc_lambda, c.ewc_fisher)
    shuffle, memory_gen = generator(config.seed, Stream.SHUFFLE), generator(config.seed, Stream.MEMORY)
    batch = config.eval.batch_size
    if checkpoint is None:
        theta = init_weights(heads[0], config.init.scheme, config.init.gain, generator(config.seed, Stream.LEARNER)).to(device)
        initial = task_accuracies(heads, tasks, theta, batch)
        R = torch.zeros(len(tasks), len(tasks))
        train_seconds, distill_seconds, done, earlier = [], [], 0, 0.0
    else:
        theta, R, initial = checkpoint["theta"], checkpoint["accuracy_matrix"].cpu(), checkpoint["initial_accuracy"].cpu()
        train_seconds, distill_seconds = checkpoint["train_seconds"], checkpoint["distill_seconds"]
        done, earlier = checkpoint["tasks_done"], checkpoint["seconds"]
        try:
            learner.load_state_dict(checkpoint["learner"], heads)
        except (KeyError, TypeError) as error:
            raise UserError(f"the checkpoint {run.checkpoint} is corrupt: its learner state lacks {error}") from None
        shuffle.set_state(checkpoint["shuffle"].cpu())
        memory_gen.set_state(checkpoint["memory_gen"].cpu())

    started = time.perf_counter() - earlier
    progress = tqdm(list(enumerate(tasks))[done:], desc=f"continual {c.learner}", disable=not config.run.progress,
                    initial=done, total=len(tasks))
    for k, task in progress:
        x, y = task.train_x.to(device), task.train_y.to(device)
        clock = time.perf_counter()
        theta = train_task(theta, heads[k], x, y, learner, c.epochs, c.batch_size, c.lr, shuffle)
        train_seconds.append(round(time.perf_counter() - clock, 3))
        if not torch.isfinite(theta).all():
            raise DivergenceError(
                f"the {continual_label(config)} learner diverged (non-finite weights) while training task {k + 1}; "
                f"lower continual.lr{' or continual.ewc_lambda' if c.learner == 'ewc' else ''}"
            )
        R[k] = task_accuracies(heads, tasks, theta, batch)
        memory = None
        if (c.learner == "gem" and c.memory == "real") or (c.learner == "ewc" and c.ewc_fisher == "memory_batch"):
            memory = real_memory(x, y, c.memory_per_task, memory_gen)
        elif c.learner == "gem":
            task_run = RunDir(run.path / "memory" / f"task_{k + 1:02d}")
            memory, _, seconds = distilled_memory(config, heads[k], x, y, len(task.classes), task_run, config.seed + k,
                                                  resume=checkpoint is not None and k == done)
            distill_seconds.append(round(seconds, 3))
        learner.end_task(theta, heads[k], x, y, memory)
        run.write_checkpoint({
            "config": config.fingerprint(), "tasks_done": k + 1, "theta": theta, "accuracy_matrix": R, "initial_accuracy": initial,
            "train_seconds": train_seconds, "distill_seconds": distill_seconds, "learner": learner.state_dict(),
            "shuffle": shuffle.get_state(), "memory_gen": memory_gen.get_state(), "seconds": time.perf_counter() - started,
        })
        plot_curves(accuracy_after_each_task(R, k + 1), run.curves, f"{c.stream.name}, {continual_label(config)}", x="task")
        progress.set_postfix(acc=f"{R[k, : k + 1].mean().item():.3f}")
        if on_iteration is not None:
            on_iteration(k + 1)
    progress.close()
    seconds = time.perf_counter() - started

    figures = summary(R, initial)
    record = {
        "stream": c.stream.name, "learner": c.learner, "memory": c.memory if c.learner == "gem" else None,
        **figures, "accuracy_matrix": R.tolist(), "initial_accuracy": initial.tolist(),
        "train_seconds": train_seconds, "distill_seconds": distill_seconds,
        "projections": getattr(learner, "projections", None),
    }
    write_json(run.path / "continual.json", record)
    save_accuracy_matrix(run.path / "continual.png", R, f"{c.stream.name}, {continual_label(config)}: ACC {100 * figures['acc']:.1f}%")
    if c.learner == "gem":
        memories = learner.state_dict()
        save_tensors(run.path / "memory.pt", {"x": [x.cpu() for x in memories["x"]], "y": [y.cpu() for y in memories["y"]]})
    final = R[-1]
    metrics = {
        "method": config.method,
        "dataset": c.stream.name,
        "model": config.model.name,
        "init": config.init.kind,
        "n_distilled": c.memory_per_task if c.learner == "gem" else 0,
        "steps": c.distill.steps if c.learner == "gem" and c.memory == "distilled" else 0,
        "epochs": c.epochs,
        "test_acc": {"mean": final.mean().item(), "std": final.std(unbiased=False).item(), "n": len(final)},
        "seconds": round(seconds, 2),
        "learner": continual_label(config),
        **figures,
        "distill_seconds_per_task": round(sum(distill_seconds) / len(distill_seconds), 3) if distill_seconds else None,
        "device": str(device),
    }
    run.write_metrics(metrics)
    return metrics
