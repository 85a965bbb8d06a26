"""The command line: ``distill run | eval | show | pretrain | baseline | train | compare | export``.
Parses arguments and prints; no math."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import NoReturn

from .choices import KERNEL_METHODS
from .config import MAX_KERNEL_NETWORKS, MAX_LR, MAX_NETWORKS
from .errors import DivergenceError, PeerLost, UserError
from .files import check_writable

USER_ERROR, FAILURE, INTERRUPTED = 2, 1, 130


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (not the usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(USER_ERROR, f"distill: error: {message} (see: {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="distill", description="Dataset distillation: learn a tiny synthetic training set.")
    commands = p.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="distill a dataset as a YAML config says (no CONFIG: the bundled digits default)")
    run.add_argument("config", nargs="?", help="experiment YAML file; omitted: the built-in default (experiments/digits.yaml)")
    run.add_argument("-o", "--out", default="runs/default", help="run directory (default: runs/default)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set outer.epochs=10 (repeatable)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    run.add_argument("--overwrite", action="store_true", help="replace the run files already in --out (only those)")
    run.add_argument("--tensorboard", default=None, metavar="DIR",
                     help="also write TensorBoard events to DIR (run.tensorboard: true writes them to OUT/tensorboard)")

    ev = commands.add_parser("eval", help="train held-out networks on a run's distilled data and report test accuracy")
    ev.add_argument("run_dir")
    ev.add_argument("--models", type=int, default=None, help="number of held-out networks (default: the config's eval.models)")
    ev.add_argument("--model", default=None, help="cross-architecture: train random networks of this architecture instead")
    ev.add_argument("--lr", default=None, help="with --model: a constant learning rate for every step, or 'tune' "
                    "(best of baseline.lrs on held-out training samples); default: the learned rates")
    ev.add_argument("--kernel-networks", type=int, default=None, metavar="M",
                    help="a KIP run with kernel.name=convnet_rf: measure its KRR test accuracy with a draw of M random "
                    "networks (default: the run's kernel.eval_networks, else kernel.networks)")

    show = commands.add_parser("show", help="print a readable summary of a run directory")
    show.add_argument("run_dir")

    pre = commands.add_parser("pretrain", help="train a pool of networks on a source dataset (for init.kind pretrained_*)")
    pre.add_argument("config", help="experiment YAML file: its model, init scheme, seed and pretrain section")
    pre.add_argument("-o", "--out", default=None, help="pool file to write (default: the config's init.pool)")
    pre.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set pretrain.networks=10 (repeatable)")
    pre.add_argument("--resume", action="store_true", help="continue the unfinished pool OUT.partial")

    base = commands.add_parser("baseline", help="a baseline of the distilled size (real samples, k-means, averages, kNN) as a run directory")
    base.add_argument("config", help="experiment YAML file (its synthetic.n, steps and model are used)")
    base.add_argument("--method", required=True, help="random_real, optimized_real, kmeans, average_real or knn")
    base.add_argument("-o", "--out", default=None, help="run directory (default: runs/<config name>_<method>)")
    base.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config value, e.g. --set baseline.memory=kmeans (repeatable)")
    base.add_argument("--overwrite", action="store_true", help="replace the run files already in --out (only those)")

    train = commands.add_parser("train", help="train the config's model on the full training set (cached): the distillation ratio's denominator")
    train.add_argument("config", nargs="?", help="experiment YAML file (default: the built-in digits default)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.epochs=2 (repeatable)")

    compare = commands.add_parser("compare", help="a markdown table of several runs and a plot of accuracy against n")
    compare.add_argument("run_dirs", nargs="+")
    compare.add_argument("--plot", default="compare.png", help="where to write the plot, a .png, .pdf or .svg file (default: compare.png)")
    compare.add_argument("--ratio", type=float, default=0.9,
                         help="target distillation ratio for the %% distillation size of each sweep (default: 0.9)")
    compare.add_argument("--cache", default=None, help="full-data results file of `distill train` (default: each run's train.cache)")
    compare.add_argument("--curves", default=None, metavar="FILE",
                         help="also overlay the runs' loss and accuracy curves in FILE, a .png, .pdf or .svg file")
    compare.add_argument("--overwrite", action="store_true", help="replace the files --plot and --curves name if they exist")

    export = commands.add_parser("export", help="write a run's distilled data as a file of plain arrays (layout: docs/export.md)")
    export.add_argument("run_dir")
    export.add_argument("--format", default=None, help="npz (numpy arrays) or pt (tensors for torch.load(weights_only=True)); "
                        "default: the suffix of -o, else npz")
    export.add_argument("-o", "--out", default=None, help="file to write (default: RUN_DIR/export.npz or RUN_DIR/export.pt)")
    export.add_argument("--overwrite", action="store_true", help="replace the file -o names if it exists")
    return p


def entry() -> NoReturn:
    """The ``distill`` command (and ``python -m distill``): ``main`` on the command line's
    arguments, then the process ends with its exit code; a process of a distributed run
    ends without tearing down its process group (``distributed.end_process``)."""
    code = main()
    if "distill.distributed" in sys.modules:  # loaded by the commands that may join a process group
        from .distributed import end_process

        end_process(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error, already printed on one line (2)
        return int(done.code or 0)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ndistill: interrupted; a run keeps the last state it saved in checkpoint.pt: continue it with --resume "
              "(distill show DIR says how far it got)", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:
        code, message = describe(error)
        if code is None:
            raise  # a bug: keep its traceback visible
        print(f"distill: {message}", file=sys.stderr)
        return code


def describe(error: Exception) -> tuple[int | None, str]:
    """The one place exceptions become messages: the exit code and one line for the
    project's own errors and the known library errors a user's input causes; ``None`` for
    anything else (a bug, whose traceback stays visible)."""
    torch = sys.modules.get("torch")  # loaded by any command that can run out of its memory
    if isinstance(error, UserError):
        return USER_ERROR, "error: " + one_line(str(error))
    if isinstance(error, (DivergenceError, PeerLost)):
        return FAILURE, one_line(str(error))
    out_of_memory = (MemoryError,) + ((torch.OutOfMemoryError,) if torch is not None else ())
    if isinstance(error, out_of_memory) or (isinstance(error, RuntimeError) and "can't allocate memory" in str(error)):
        return USER_ERROR, ("error: out of memory for the sizes this config asks for (synthetic.n, steps and epochs, "
                            "dataset.resize, the number of networks); try outer.backgrad: recompute, a smaller "
                            "outer.batch_size, fewer outer.models_per_iteration or fewer synthetic steps")
    if isinstance(error, OSError) and error.filename is not None:
        return USER_ERROR, f"error: {error.filename}: {error.strerror or one_line(str(error))}"
    return None, ""


def one_line(text: str) -> str:
    """A message on one line: its lines joined with '; '."""
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM (kill, a scheduler's pre-emption) saves the run like Ctrl-C does."""
    raise KeyboardInterrupt


def run_command(args: argparse.Namespace) -> int:
    if not args.out.strip():
        raise UserError("-o must name a run directory")
    from .config import load_config, validate
    from .distributed import join
    from .experiment import run_experiment
    from .rundir import RunDir

    if args.resume and args.config is None:
        config = validate(RunDir(args.out).read_config())
        if args.overrides:
            raise UserError("--set cannot change a run that is resumed")
    else:
        config = load_config(args.config, args.overrides)
    group = join(config.run.device, config.run.timeout)
    metrics = run_experiment(config, args.out, resume=args.resume, overwrite=args.overwrite, tensorboard=args.tensorboard,
                             group=group)
    if not group.main:
        return 0
    if metrics["method"] == "continual":
        print(f"{metrics['learner']}: ACC {100 * metrics['acc']:.2f}%, BWT {100 * metrics['bwt']:+.2f}, "
              f"FWT {100 * metrics['fwt']:+.2f} ({metrics['seconds']:.0f} s); results in {args.out}")
        return 0
    if metrics["method"] in KERNEL_METHODS:
        transfer = metrics["transfer_acc"]
        kernel = f" (kernel of {metrics['kernel_networks']} random networks)" if metrics.get("kernel_networks") else ""
        print(f"KRR test accuracy {100 * metrics['krr_acc']['mean']:.2f}%{kernel}; transfer {100 * transfer['mean']:.2f}% ± "
              f"{100 * transfer['std']:.2f} over {transfer['n']} {metrics['model']} networks ({metrics['seconds']:.0f} s); "
              f"results in {args.out}")
        return 0
    acc = metrics["test_acc"]
    print(f"test accuracy {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} over {acc['n']} networks "
          f"({metrics['seconds']:.0f} s); results in {args.out}")
    print_grid_edge(metrics)
    return 0


def print_grid_edge(metrics: dict) -> None:
    """A baseline's note that its chosen grid cell lies on the grid's edge (``baselines.grid_edge``)."""
    if metrics.get("grid_edge"):
        print(f"note: {metrics['grid_edge']}")


def eval_command(args: argparse.Namespace) -> int:
    from .experiment import evaluate_run, evaluate_transfer

    if args.models is not None and not 1 <= args.models <= MAX_NETWORKS:
        raise UserError(f"--models must lie in 1..{MAX_NETWORKS:,}, got {args.models}")
    if args.lr is not None and args.model is None:
        raise UserError("--lr goes with --model NAME (cross-architecture evaluation)")
    if args.kernel_networks is not None and not 1 <= args.kernel_networks <= MAX_KERNEL_NETWORKS:
        raise UserError(f"--kernel-networks must lie in 1..{MAX_KERNEL_NETWORKS:,}, got {args.kernel_networks}")
    if args.kernel_networks is not None and args.model is not None:
        raise UserError("--kernel-networks measures a kernel run's KRR accuracy; it does not go with --model")
    if args.model is not None:
        evaluation, lr = evaluate_transfer(args.run_dir, args.model, parse_lr(args.lr), args.models)
        print(f"{args.model}, lr {'learned' if lr is None else lr}: before training: {evaluation.before}\n"
              f"after training:  {evaluation.test_acc}")
        return 0
    from .methods.kernel import KernelEvaluation

    evaluation = evaluate_run(args.run_dir, args.models, args.kernel_networks)
    if isinstance(evaluation, KernelEvaluation):
        kernel = "" if evaluation.kernel_networks is None else f" (kernel of {evaluation.kernel_networks} random networks)"
        print(f"KRR test accuracy {100 * evaluation.krr_acc.mean:.2f}%{kernel}\n"
              f"transfer:         {evaluation.transfer_acc}")
        return 0
    if args.models and evaluation.test_acc.n < args.models:
        print(f"note: a fixed-initialisation run has one initial network, so it is evaluated once, not {args.models} times")
    print(f"before training: {evaluation.before}\nafter training:  {evaluation.test_acc}")
    return 0


def parse_lr(text: str | None) -> float | str | None:
    """``--lr``: None, 'tune', or a positive number."""
    if text is None or text == "tune":
        return text
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--lr must be a positive number or 'tune', got {text!r}") from None
    if not 0 < value <= MAX_LR:
        raise UserError(f"--lr must be a positive number up to {MAX_LR:g} or 'tune', got {text!r}")
    return value


def train_command(args: argparse.Namespace) -> int:
    from .config import load_config
    from .fulltrain import full_data_accuracy
    from .report import full_data_key

    config = load_config(args.config, args.overrides)
    result = full_data_accuracy(config)
    source = f"cached in {config.train.cache}" if result["cached"] else f"{result['seconds']:.0f} s; cached in {config.train.cache}"
    print(f"{full_data_key(config)}: full-data test accuracy {100 * result['test_acc']:.2f}% "
          f"({result['train_size']} training samples; {source})")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from .report import distillation_size, markdown_table, plot_run_curves, plot_sweeps, summarize_for_comparison, sweeps

    if not 0 < args.ratio <= 1:
        raise UserError(f"--ratio must lie in (0, 1], got {args.ratio}")
    plot = plot_path(args.plot, "--plot", args.overwrite)
    curves = None if args.curves is None else plot_path(args.curves, "--curves", args.overwrite)
    if curves is not None and curves.resolve() == plot.resolve():
        raise UserError(f"--plot and --curves both name {args.plot}; the curves would replace the plot: name two files")
    runs = [summarize_for_comparison(d, args.cache) for d in args.run_dirs]
    print(markdown_table(runs))
    for (method, dataset, model), group in sweeps(runs).items():
        if len(group) > 1:
            size = distillation_size(group, args.ratio)
            reach = "not reached" if size is None else f"{size:.3g}% of the training set"
            print(f"\n{method} ({dataset}, {model}): distillation size at ratio {args.ratio:g}: {reach}")
    plot_sweeps(runs, plot)
    print(f"\nplot: {plot}")
    if curves is not None:
        left_out = plot_run_curves(args.run_dirs, curves)
        print(f"curves: {curves}" + (f" (without {', '.join(left_out)}: no log.csv rows)" if left_out else ""))
    return 0


PLOT_FORMATS = (".png", ".pdf", ".svg")


def plot_path(text: str, option: str, overwrite: bool) -> Path:
    """``option`` (``--plot``, ``--curves``): a file of a known picture format in a folder
    that exists (made if need be), and not a file that exists unless ``overwrite``."""
    path = Path(text)
    if path.is_dir():
        raise UserError(f"{option} {text} is a directory; name a file in it, e.g. {path / 'compare.png'}")
    if path.suffix.lower() not in PLOT_FORMATS:
        raise UserError(f"{option} {text}: name a {', '.join(PLOT_FORMATS)} file, e.g. {path.with_suffix('.png')}")
    if path.exists() and not overwrite:
        raise UserError(f"{option} {text} already exists; pass --overwrite to replace it, or name another file with {option}")
    path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path.parent)
    return path


def export_command(args: argparse.Namespace) -> int:
    from .export import export, load

    run = load(args.run_dir)
    path = export(run, args.format, args.out, args.overwrite)
    data = run.data
    labels = "soft labels" if data.learns_labels else "hard labels"
    print(f"{path}: {data.n} samples ({data.steps} steps x {data.n // data.steps}, {data.epochs} epochs), {labels}, "
          f"{len(data.raw_lrs)} learned step sizes (layout: docs/export.md)")
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


def baseline_command(args: argparse.Namespace) -> int:
    from .choices import BASELINES
    from .config import load_config
    from .errors import unknown
    from .experiment import run_experiment

    if args.method not in BASELINES:
        raise unknown("baseline", args.method, BASELINES)
    config = load_config(args.config, [*args.overrides, f"method={args.method}"])
    out = args.out or f"runs/{Path(args.config).stem}_{args.method}"
    metrics = run_experiment(config, out, overwrite=args.overwrite)
    acc = metrics["test_acc"]
    setting = (f"k={metrics['k']}, {metrics['distance']}" if args.method == "knn"
               else f"lr {metrics['lr']}, {metrics['epochs']} epochs")
    print(f"{args.method}: test accuracy {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} over {acc['n']} "
          f"{'sets' if args.method == 'knn' else 'networks'} ({setting}; {metrics['seconds']:.0f} s); results in {out}")
    print_grid_edge(metrics)
    return 0


COMMANDS = {"run": run_command, "eval": eval_command, "show": show_command, "baseline": baseline_command,
            "train": train_command, "compare": compare_command, "pretrain": pretrain_command, "export": export_command}

if __name__ == "__main__":
    sys.exit(main())
