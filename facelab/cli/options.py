"""CLI flags generated from an options model: each pydantic field becomes one `--flag` with the field's
type (Literal and registry choices included), description and default, so options are declared once, in the model.

A flag left out stays None and the model's default (or the config file's value) applies; see
facelab.core.config.build_options.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from facelab.core.registry import registry_choice


def choice_metavar(names: Iterable[str]) -> str:
    """The metavar of a flag whose value is one of ``names`` (checked where the value is used)."""
    return "<" + "|".join(names) + ">"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> Any:
    """Strip Optional from a field annotation."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    """The types of a union, each stripped of Annotated."""
    return [get_args(a)[0] if get_origin(a) is Annotated else a for a in get_args(annotation)]


def _scalar_union(annotation: Any) -> bool:
    """Whether ``annotation`` is a union of numbers, strings and Literals (``float | Literal["auto"]``)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return False
    return all(get_origin(a) is Literal or a in (int, float, str) for a in _members(annotation))


def _union_metavar(annotation: Any) -> str:
    """``<NUMBER|auto>`` for ``float | Literal["auto"]``."""
    names = {int: "INTEGER", float: "NUMBER", str: "TEXT"}
    parts: list[str] = []
    for a in _members(annotation):
        parts += [str(v) for v in get_args(a)] if get_origin(a) is Literal else [names[a]]
    return choice_metavar(parts)


def _default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return ""
    return f" (default: {info.default})"


def model_parameters(model: type[BaseModel], renames: dict[str, str] | None = None,
                     exclude: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    renames = renames or {}
    params = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        base = _base_type(info.annotation)
        text = (info.description or name.replace("_", " ")).rstrip(".")
        help_text = text[0].upper() + text[1:] + "." + _default_text(info)
        flag = renames.get(name, _flag(name))
        choice = registry_choice(info)
        if choice is not None:  # validated by the options model, so a plugin registered later is accepted
            opt = typer.Option(flag, help=help_text, show_default=False, metavar=choice_metavar(choice.names()))
            annotation: Any = Annotated[str | None, opt]
        elif base is bool:
            opt = typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
            annotation = Annotated[bool | None, opt]
        elif get_origin(base) is Literal or base in (int, float, str, Path):
            opt = typer.Option(flag, help=help_text, show_default=False)
            annotation = Annotated[base | None, opt]
        elif _scalar_union(base):  # e.g. a number or "auto": taken as text, parsed by the options model
            opt = typer.Option(flag, help=help_text, show_default=False, metavar=_union_metavar(base))
            annotation = Annotated[str | None, opt]
        else:
            continue  # compound fields are config-file only
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
    return params


def with_parameters(func: Callable[..., Any], extra: list[inspect.Parameter]) -> Callable[..., Any]:
    """`func` whose visible signature is its own parameters followed by `extra` (collected in **kwargs)."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    return func
