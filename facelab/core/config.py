"""Options objects: every option is a field of a pydantic model, settable from a TOML/JSON file and
overridable by a CLI flag. Precedence: model defaults < config file < flags given on the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from facelab.core.errors import InputError, validation_message
from facelab.core.versioned import json_loads

M = TypeVar("M", bound=BaseModel)


def read_config_file(path: Path, section: str | None = None) -> dict[str, Any]:
    """Key/values from a .toml or .json file; `section` picks a table (e.g. [extract]) when present."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        if path.suffix.lower() == ".json":
            data = json_loads(path.read_bytes())
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the config file: {exc.strerror or exc}", path) from None
    except RecursionError:
        raise InputError("not a valid config file (nested too deeply)", path) from None
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError, UnicodeDecodeError, an integer too long
        raise InputError(f"not a valid config file ({' '.join(str(exc).split())[:200]})", path) from None
    if not isinstance(data, dict):
        raise InputError("config file must hold a table of options", path)
    if section is not None and isinstance(data.get(section), dict):
        data = data[section]
    return {k.replace("-", "_"): v for k, v in data.items()}


def build_options(model: type[M], config: Path | None, flags: dict[str, Any]) -> M:
    """The options model from defaults, an optional config file, and the flags that were given (not None)."""
    values: dict[str, Any] = {}
    if config is not None:
        values.update(read_config_file(config, section=getattr(model, "config_section", None)))
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise option_error(exc) from None


def option_error(exc: ValidationError) -> InputError:
    """The first problem of a validation error as a one-line user error naming the option."""
    return InputError(f"invalid option {validation_message(exc)}")


def marked_fields(options: type[BaseModel], mark: str) -> tuple[str, ...]:
    """The fields of an options model marked ``Field(..., json_schema_extra={mark: True})``, in declaration
    order (marks such as "fixed" for model shape or "execution" for options that never change the output;
    being in the JSON schema, they reach the studio too)."""
    return tuple(name for name, info in options.model_fields.items()
                 if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(mark) is True)
