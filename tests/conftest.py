import pytest

from distill.config import load_config

# A run small enough for the test suite: digits, a small MLP, a few iterations.
QUICK = [
    "model.name=mlp",
    "model.hidden=[32]",
    "synthetic.n=20",
    "synthetic.steps=2",
    "synthetic.epochs=2",
    "outer.epochs=6",
    "outer.decay_epochs=2",
    "eval.models=4",
    "run.log_every=2",
    "run.checkpoint_every=3",
    "run.progress=false",
    "run.device=cpu",
]


@pytest.fixture
def quick_config():
    def make(*overrides: str):
        return load_config(None, QUICK + list(overrides))

    return make
