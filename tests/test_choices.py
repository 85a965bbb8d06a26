"""The named choices of the config schema (distill.choices): consistent with what implements them,
and importing nothing, so that the schema loads no torch."""

import ast
from pathlib import Path

from distill import choices
from distill.baselines import TRAINING_BASELINES


def test_the_baselines_are_the_training_sets_and_knn_whose_memories_are_training_sets():
    assert set(choices.BASELINES) == {*TRAINING_BASELINES, "knn"}
    assert set(choices.MEMORIES) <= set(TRAINING_BASELINES)


def test_the_learning_rate_grid_is_positive_and_increasing():
    assert all(0 < a < b for a, b in zip(choices.LR_GRID, choices.LR_GRID[1:]))


def test_the_module_imports_nothing_but_annotations():
    tree = ast.parse(Path(choices.__file__).read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [(node.module, [alias.name for alias in node.names]) for node in imports] == [("__future__", ["annotations"])]
