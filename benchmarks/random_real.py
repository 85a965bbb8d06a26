"""The random-real-images baseline of an adaptation experiment (Wang et al., Table 2).

For a ``pretrained_random`` config: ``n`` random real images of the *target* training set
(``n / C`` per class, arranged as the distilled data is: ``S`` steps of one image per
class, ``epochs`` passes), trained with one fixed learning rate ``η`` for all ``T`` steps,
from the pool's held-out networks, then tested on the target test split — the same
networks, number of images, steps and epochs as the distilled data of that config.

``η`` is tuned without the test split or the held-out networks: for every candidate rate,
the pool's *training* networks are fine-tuned on ``draws`` random image sets and tested on
a validation slice of the target training set; the best mean wins. The held-out networks
are then fine-tuned on ``draws`` fresh image sets at that rate. This is a script of the
adaptation experiments, not a general baseline module (``distill baseline`` is that).

    python benchmarks/random_real.py experiments/digits_to_mnist.yaml --set dataset.root=../shared/data \
        -o benchmarks/results/random_real_digits_to_mnist.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from distill.config import load_config  # noqa: E402
from distill.evaluate import accuracies  # noqa: E402
from distill.build import build, sampler_of  # noqa: E402
from distill.seeds import Stream, generator  # noqa: E402
from distill.synthetic import DistilledData  # noqa: E402
from distill.unroll import train  # noqa: E402



def random_real_data(setup, lr: float, gen: torch.Generator) -> DistilledData:
    """The config's synthetic layout (n, steps, epochs) filled with random real training images."""
    syn, ds = setup.config.synthetic, setup.dataset
    return DistilledData.create(syn.n, syn.steps, syn.epochs, ds.input_shape, ds.num_classes, lr, (ds.train_x, ds.train_y), gen)


def fine_tuned(setup, thetas, lr, draws, stream, x, y):
    """Accuracies on ``(x, y)`` of every network in ``thetas`` after each of ``draws`` image sets: [draws × N]."""
    accs = []
    for d in range(draws):
        data = random_real_data(setup, lr, generator(setup.config.seed, Stream.RANDOM_REAL, stream, d))
        trained = train(setup.net, thetas, data.x.detach(), data.targets(), data.lrs().detach())
        accs.append(accuracies(setup.net, trained, x, y, setup.config.eval.batch_size))
    return torch.cat(accs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.01, 0.02, 0.05, 0.1, 0.2])
    p.add_argument("--draws", type=int, default=3, help="random image sets per learning rate and for the final test")
    p.add_argument("--validation", type=int, default=2000, help="target training images to tune the rate on")
    p.add_argument("--tune-networks", type=int, default=20, help="training networks of the pool to tune the rate on")
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args()
    started = time.perf_counter()
    config = load_config(args.config, args.overrides)
    setup = build(config)
    sampler = sampler_of(setup)
    train_nets, held = sampler.train[: args.tune_networks], sampler.held_out(config.eval.models)
    pick = torch.randperm(len(setup.dataset.train_y), generator=generator(config.seed, Stream.RANDOM_REAL))[: args.validation]
    val_x, val_y = setup.dataset.train_x[pick], setup.dataset.train_y[pick]
    tuning = {lr: fine_tuned(setup, train_nets, lr, args.draws, 0, val_x, val_y).mean().item() for lr in args.lrs}
    best = max(tuning, key=tuning.get)
    test_x, test_y = setup.real.test_x, setup.real.test_y
    after = fine_tuned(setup, held, best, args.draws, 1, test_x, test_y)
    before = accuracies(setup.net, held, test_x, test_y, config.eval.batch_size)
    result = {
        "config": args.config,
        "dataset": config.dataset.name,
        "pool": config.init.pool,
        "n": config.synthetic.n, "steps": config.synthetic.steps, "epochs": config.synthetic.epochs,
        "validation_acc_by_lr": tuning,
        "tune_networks": len(train_nets),
        "validation_images": len(val_y),
        "lr": best,
        "held_out_networks": len(held),
        "draws": args.draws,
        "before_acc": {"mean": before.mean().item(), "std": before.std(unbiased=False).item(), "n": len(before)},
        "test_acc": {"mean": after.mean().item(), "std": after.std(unbiased=False).item(), "n": len(after)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
