"""The command line: ``distill run | eval | show | pretrain``. Parses arguments and prints; no math."""

from __future__ import annotations

import argparse
import signal
import sys

import torch

from .errors import DivergenceError, UserError

USER_ERROR, FAILURE, INTERRUPTED = 2, 1, 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distill", description="Dataset distillation: learn a tiny synthetic training set.")
    commands = p.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="distill a dataset as a YAML config says (no CONFIG: the bundled digits default)")
    run.add_argument("config", nargs="?", help="experiment YAML file; omitted: the built-in default (experiments/digits.yaml)")
    run.add_argument("-o", "--out", default="runs/default", help="run directory (default: runs/default)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set outer.epochs=10 (repeatable)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")

    ev = commands.add_parser("eval", help="train held-out networks on a run's distilled data and report test accuracy")
    ev.add_argument("run_dir")
    ev.add_argument("--models", type=int, default=None, help="number of held-out networks (default: the config's eval.models)")

    show = commands.add_parser("show", help="print a readable summary of a run directory")
    show.add_argument("run_dir")

    pre = commands.add_parser("pretrain", help="train a pool of networks on a source dataset (for init.kind pretrained_*)")
    pre.add_argument("config", help="experiment YAML file: its model, init scheme, seed and pretrain section")
    pre.add_argument("-o", "--out", default=None, help="pool file to write (default: the config's init.pool)")
    pre.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set pretrain.networks=10 (repeatable)")
    pre.add_argument("--resume", action="store_true", help="continue the unfinished pool OUT.partial")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"distill: error: {error}", file=sys.stderr)
        return USER_ERROR
    except DivergenceError as error:
        print(f"distill: {error}", file=sys.stderr)
        return FAILURE
    except torch.OutOfMemoryError:
        print("distill: error: out of memory; try outer.backgrad: recompute, a smaller outer.batch_size, "
              "fewer outer.models_per_iteration or fewer synthetic steps", file=sys.stderr)
        return FAILURE
    except KeyboardInterrupt:
        print("\ndistill: interrupted; a run that had started keeps its last state in checkpoint.pt: continue it with --resume",
              file=sys.stderr)
        return INTERRUPTED


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM (kill, a scheduler's pre-emption) saves the run like Ctrl-C does."""
    raise KeyboardInterrupt


def run_command(args: argparse.Namespace) -> int:
    from .config import load_config, validate
    from .experiment import run_experiment
    from .rundir import RunDir

    if args.resume and args.config is None:
        config = validate(RunDir(args.out).read_config())
        if args.overrides:
            raise UserError("--set cannot change a run that is resumed")
    else:
        config = load_config(args.config, args.overrides)
    metrics = run_experiment(config, args.out, resume=args.resume)
    if metrics["method"] == "continual":
        print(f"{metrics['learner']}: ACC {100 * metrics['acc']:.2f}%, BWT {100 * metrics['bwt']:+.2f}, "
              f"FWT {100 * metrics['fwt']:+.2f} ({metrics['seconds']:.0f} s); results in {args.out}")
        return 0
    acc = metrics["test_acc"]
    print(f"test accuracy {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} over {acc['n']} networks "
          f"({metrics['seconds']:.0f} s); results in {args.out}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from .experiment import evaluate_run

    if args.models is not None and args.models < 1:
        raise UserError(f"--models must be at least 1, got {args.models}")
    evaluation = evaluate_run(args.run_dir, args.models)
    if args.models and evaluation.test_acc.n < args.models:
        print(f"note: a fixed-initialisation run has one initial network, so it is evaluated once, not {args.models} times")
    print(f"before training: {evaluation.before}\nafter training:  {evaluation.test_acc}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    from .experiment import summarize_run

    print(summarize_run(args.run_dir))
    return 0


def pretrain_command(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pretrain import pretrain

    config = load_config(args.config, args.overrides)
    out = args.out or config.init.pool
    if out is None:
        raise UserError("say where to write the pool: -o POOL, or init.pool in the config")
    pool = pretrain(config, out, resume=args.resume)
    acc = pool.test_acc
    print(f"{len(pool.thetas)} networks pretrained on {pool.source}: source test accuracy "
          f"{100 * acc.mean():.2f}% ± {100 * acc.std(unbiased=False):.2f}; pool in {out}")
    return 0


COMMANDS = {"run": run_command, "eval": eval_command, "show": show_command, "pretrain": pretrain_command}

if __name__ == "__main__":
    sys.exit(main())
