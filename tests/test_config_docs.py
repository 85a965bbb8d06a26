"""docs/config.md is generated from the config schema (scripts/config_docs.py) and must be current."""

import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from distill.config import Config

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "config_docs.py"


def _load_generator():
    spec = importlib.util.spec_from_file_location("config_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("config_docs", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


config_docs = _load_generator()


def _sections(model=Config, key=""):
    """Every section model of the schema with its dotted key, nested ones included."""
    yield key, model
    for name, field in model.model_fields.items():
        sub = config_docs.section_model(field.annotation)
        if sub is not None:
            yield from _sections(sub, f"{key}.{name}" if key else name)


def test_config_md_is_current():
    expected = config_docs.render()
    current = config_docs.OUTPUT.read_text(encoding="utf-8") if config_docs.OUTPUT.is_file() else ""
    assert current == expected, f"docs/config.md is stale: run {config_docs.COMMAND}"


def test_check_flag_exits_1_on_a_stale_page(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "config.md"
    stale.write_text("# out of date\n", encoding="utf-8")
    monkeypatch.setattr(config_docs, "OUTPUT", stale)
    monkeypatch.setattr(config_docs, "ROOT", tmp_path)
    assert config_docs.main(["--check"]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "stale" in message and config_docs.COMMAND in message
    assert stale.read_text(encoding="utf-8") == "# out of date\n"  # --check writes nothing
    assert config_docs.main([]) == 0
    assert config_docs.main(["--check"]) == 0


def test_the_output_is_deterministic():
    assert config_docs.render() == config_docs.render()


@pytest.mark.parametrize("key, model", list(_sections()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_field_and_section_is_described(key, model):
    assert inspect.cleandoc(model.__doc__ or "").strip(), f"section {key or 'top level'} has no docstring"
    for name, field in model.model_fields.items():
        assert (field.description or "").strip(), f"{key + '.' if key else ''}{name} has no description"


def test_every_key_is_on_the_page():
    page = config_docs.render()
    for key, model in _sections():
        for name in model.model_fields:
            full = f"{key}.{name}" if key else name
            assert f"| `{full}` |" in page, full


def test_nested_sections_show_their_own_defaults():
    rows = {row.key: row for doc in config_docs.sections() for row in doc.rows}
    assert rows["`outer.epochs`"].default == "`400`"
    assert rows["`continual.distill.outer.epochs`"].default == "`100`"
    assert rows["`continual.distill.outer.models_per_iteration`"].default == "`4`"
    assert rows["`pretrain.dataset.name`"].default == "`digits`"


def test_constraints_come_from_the_field_metadata():
    rows = {row.key: row for doc in config_docs.sections() for row in doc.rows}
    assert rows["`outer.lr`"].constraints == "> 0"  # from the PositiveFloat alias
    assert rows["`outer.label_lr`"].constraints == "> 0"  # inside an Optional
    assert rows["`synthetic.lr_init`"].constraints == "> 0, ≤ 1000000"
    assert rows["`seed`"].constraints == "≥ 0, < 4294967296"
    assert rows["`pretrain.momentum`"].constraints == "≥ 0, < 1"
    assert rows["`outer.models_per_iteration`"].constraints == "≥ 1, ≤ 100000"
    assert rows["`baseline.lrs`"].constraints == "at least 1 item; each > 0"
    assert rows["`run.device`"].constraints == "one of `auto`, `cpu`, `cuda`"
    assert rows["`outer.betas`"].type == "[number, number]"
    assert rows["`continual`"].type == "section or null"


def test_anchors_link_to_headings():
    page = config_docs.render()
    headings = {config_docs.anchor(line[3:]) for line in page.splitlines() if line.startswith("## ")}
    links = set(re.findall(r"\]\(#([^)]+)\)", page))
    assert links and links <= headings, links - headings


def test_the_schema_has_only_section_models_it_can_document():
    for _, model in _sections():
        assert issubclass(model, BaseModel)
        for field in model.model_fields.values():
            config_docs.type_name(field.annotation)  # raises on a type the generator cannot name
