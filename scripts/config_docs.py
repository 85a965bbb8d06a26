"""Write docs/config.md, the configuration reference, from the schema in distill/config.py.

    python scripts/config_docs.py           # (re)write docs/config.md
    python scripts/config_docs.py --check   # exit 1 if docs/config.md is not what it would write

The page holds one section per config section (nested ones included: ``pretrain.dataset``,
``continual.stream``, ``continual.distill.outer``, ...), in the schema's order: its docstring
and a table of its keys with their type, default, constraints (``gt``/``ge``/``lt``/``le``,
``min_length`` and ``Literal`` choices, read from the field metadata) and the field's
``description``. The defaults are those of the section as its parent creates it (so
``continual.distill.outer`` shows its own defaults, not those of ``outer``). The output
depends only on the schema: no dates, no paths of this machine.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from distill.config import Config  # noqa: E402

OUTPUT = ROOT / "docs" / "config.md"
COMMAND = "python scripts/config_docs.py"

_TYPE_NAMES = {float: "number", int: "integer", str: "string", bool: "boolean", type(None): "null"}
_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "≤"))


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    constraints: str
    description: str


@dataclass(frozen=True)
class SectionDoc:
    key: str  # dotted, "" for the top level
    text: str  # the section's docstring (or, for a class already shown, its field's description)
    rows: tuple[Row, ...]

    @property
    def title(self) -> str:
        return f"`{self.key}`" if self.key else "Top level"


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation (also ``.`` and backticks) dropped, spaces to ``-``."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The config section a field holds (``X`` or ``X | None``), else None."""
    for candidate in (annotation, *get_args(annotation)) if _is_union(annotation) else (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def type_name(annotation: Any) -> str:
    """A YAML reader's name for a field type: ``number``, ``list of integers``, ``section or null``, ..."""
    if get_origin(annotation) is Annotated:
        return type_name(get_args(annotation)[0])
    if _is_union(annotation):
        args = sorted(get_args(annotation), key=lambda a: a is type(None))  # null last
        return " or ".join(type_name(a) for a in args)
    if get_origin(annotation) is Literal:
        kinds = {type_name(type(choice)) for choice in get_args(annotation)}
        return " or ".join(sorted(kinds))
    if get_origin(annotation) is list:
        return f"list of {type_name(get_args(annotation)[0])}s"
    if get_origin(annotation) is tuple:
        return "[" + ", ".join(type_name(a) for a in get_args(annotation)) + "]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    raise TypeError(f"config_docs.py cannot name the type {annotation!r}; teach type_name() about it")


def number(value: Any) -> str:
    """A number as a config file writes it: ``400`` for 400.0, ``0.001``, ``1000000`` for 1e6."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value and re.fullmatch(r"[\w./+-]+", value) else json.dumps(value, ensure_ascii=False)
    raise TypeError(f"config_docs.py cannot write the default {value!r}")


def _metadata(annotation: Any, field: FieldInfo | None = None) -> list[Any]:
    """The constraint objects of a field (or of one ``Annotated`` type), aliases unfolded."""
    found = list(field.metadata) if field is not None else []
    if get_origin(annotation) is Annotated:
        for item in get_args(annotation)[1:]:
            found.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return found


def _bounds(items: list[Any]) -> list[str]:
    parts = []
    for item in items:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {number(getattr(item, attribute))}")
        if isinstance(item, annotated_types.Interval):
            for _, attribute, symbol in _BOUNDS:
                if getattr(item, attribute) is not None:
                    parts.append(f"{symbol} {number(getattr(item, attribute))}")
        if isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length} item{'s' if item.min_length != 1 else ''}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length} item{'s' if item.max_length != 1 else ''}")
    return parts


def constraints(annotation: Any, field: FieldInfo | None = None) -> str:
    """``> 0, ≤ 1``, ``one of `a`, `b```, ``at least 1 item; each > 0``: what the schema enforces on one key."""
    bounds = ", ".join(_bounds(_metadata(annotation, field)))
    parts = [bounds] if bounds else []
    inner = get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation
    if _is_union(inner):
        parts.extend(constraints(arg) for arg in get_args(inner) if arg is not type(None))
    elif get_origin(inner) is Literal:
        parts.append("one of " + ", ".join(f"`{yaml_value(c)}`" for c in get_args(inner)))
    elif get_origin(inner) in (list, tuple):
        parts.extend(f"each {item}" for item in dict.fromkeys(constraints(arg) for arg in get_args(inner)))
    return "; ".join(part for part in parts if part and part != "each ")


def markdown(text: str) -> str:
    """A docstring as markdown: ``x`` (reStructuredText literals) to `x`."""
    return inspect.cleandoc(text).replace("``", "`")


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def sections(model: type[BaseModel] = Config, instance: BaseModel | None = None, key: str = "",
             text: str | None = None, shown: dict[type, str] | None = None) -> list[SectionDoc]:
    """The documented sections of ``model`` (with defaults taken from ``instance``) and every section below it."""
    shown = {} if shown is None else shown
    instance = model() if instance is None else instance
    if text is None or model not in shown:
        text = markdown(model.__doc__ or "")
    shown.setdefault(model, key)
    rows, below = [], []
    for name, field in model.model_fields.items():
        full = f"{key}.{name}" if key else name
        value = getattr(instance, name)
        sub = section_model(field.annotation)
        if sub is not None:
            link = f"[below](#{anchor(f'`{full}`')})"
            default = f"`{yaml_value(value)}` (keys {link})" if value is None else f"see {link}"
            below.append((sub, value if value is not None else sub(), full, sentence(field.description or "")))
        else:
            default = f"`{yaml_value(value)}`"
        rows.append(Row(f"`{full}`", type_name(field.annotation), default,
                        constraints(field.annotation, field), field.description or ""))
    result = [SectionDoc(key, text, tuple(rows))]
    for sub, value, full, description in below:
        result.extend(sections(sub, value, full, description, shown))
    return result


def render() -> str:
    """The text of docs/config.md."""
    docs = sections()
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{COMMAND}` from distill/config.py. Do not edit: edit the schema and rerun. -->",
        "",
        f"This page is generated from the schema in `distill/config.py` (its section docstrings and "
        f"`Field(description=...)` texts) by `{COMMAND}`; `tests/test_config_docs.py` fails when it is stale.",
        "",
        "Every key has a default; a config file names only what it changes, and "
        "`--set key.subkey=value` changes one key on the command line (the value is read as YAML). An unknown key "
        "is an error that names the closest valid key. Numbers are strict: `true` is not 1, `\"3\"` is not 3 and "
        "`3.0` is not an integer; `.inf` and `.nan` are refused. `null` leaves an optional key unset. The options "
        "that `dataset` and `model` pass through are checked by the dataset or architecture that takes them.",
        "",
        "Sections: " + ", ".join(f"[{doc.title}](#{anchor(doc.title)})" for doc in docs) + ".",
    ]
    for doc in docs:
        lines += ["", f"## {doc.title}", ""]
        if doc.text:
            lines += [doc.text, ""]
        lines += ["| key | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
        lines += [
            "| " + " | ".join(cell(c) for c in (row.key, row.type, row.default, row.constraints, row.description)) + " |"
            for row in doc.rows
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/config.md from the config schema.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config.md is stale, write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else None
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is {'stale' if current is not None else 'missing'}: run {COMMAND}",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
