"""The package's import graph: no cycles (every module imports on its own, in any order),
and the light entry points stay light."""

import json
import pkgutil
import random
import subprocess
import sys

import pytest

import distill


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(distill.__path__, "distill.") if not m.name.endswith("__main__"))


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter_in_a_random_order():
    """A cycle shows up as an ImportError for the module that enters it first."""
    names = modules()
    assert "distill.cli" in names and "distill.datasets.images" in names
    order = names[:]
    random.Random(0).shuffle(order)
    for start in range(0, len(order), 8):  # a few interpreters, each importing its modules one after another
        chunk = order[start:start + 8]
        subprocess.run([sys.executable, "-c", "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in chunk)],
                       check=True, capture_output=True)


def test_import_distill_and_the_config_schema_load_no_torch():
    loaded = loaded_after("import distill, distill.config")
    assert not {"torch", "sklearn", "matplotlib"} & loaded


def test_the_command_line_parser_loads_no_heavy_library():
    loaded = loaded_after("from distill.cli import parser\nparser()")
    assert not {"torch", "sklearn", "matplotlib", "tensorboard"} & loaded


def test_show_loads_no_heavy_library():
    """``distill show`` of a finished run reads files only (the curves and events it names included)."""
    loaded = loaded_after("from distill.experiment import summarize_run")
    assert not {"torch", "sklearn", "matplotlib", "tensorboard"} & loaded
