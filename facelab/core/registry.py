"""Registries: the one place a kind of plugin (a detector, a colour transfer, a mask mode, an architecture)
is listed by name, and the one source of the choices every option, CLI flag and config key offers for it.

A plugin is one module (or function) plus one ``register`` line. An option field that names a plugin
is declared as ``Annotated[str, registry.choice()]``: a ``str`` that pydantic checks against the registry when the
options are validated (so a plugin registered later, by a user's code or a test, is accepted by the
CLI, config files and the studio alike), and whose JSON schema lists the names registered at the time
it is asked for. The CLI shows the names as the flag's metavar.

    COLOR_TRANSFERS: Registry[ColorFit] = Registry("colour transfer")
    COLOR_TRANSFERS.register("rct", fit_rct)

    class MergeOptions(BaseModel):
        color_transfer: Annotated[str, COLOR_TRANSFERS.choice()] = "rct"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from facelab.core.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name`` (a second entry of the same name is refused unless ``replace``)."""
        if not name or name != name.strip():
            raise ValueError(f"{self.kind} name {name!r} must be a non-empty word")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a toy plugin clean up with this)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry; an unknown name is an InputError that lists the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise InputError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._entries.items()))

    def where(self, test: Callable[[T], bool]) -> frozenset[str]:
        """The names whose entries pass ``test`` (a set derived from the entries, never kept by hand)."""
        return frozenset(name for name, entry in self._entries.items() if test(entry))

    def view(self, test: Callable[[T], bool]) -> AbstractSet[str]:
        """A live set of the names whose entries pass ``test``: read at each use, so entries registered
        later count (``where`` is the snapshot)."""
        return _View(self, test)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def choice(self) -> RegistryChoice:
        """The metadata of an option field that names one of these entries:
        ``Annotated[str, REGISTRY.choice()]`` (see the module docstring)."""
        return RegistryChoice(self)


class _View(AbstractSet[str], Generic[T]):
    def __init__(self, registry: Registry[T], test: Callable[[T], bool]) -> None:
        self._registry = registry
        self._test = test

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._registry and self._test(self._registry.get(name))

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, entry in self._registry.items() if self._test(entry)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class RegistryChoice:
    """Annotated metadata: validate a ``str`` against a registry when the model is validated."""

    def __init__(self, registry: Registry[Any]) -> None:
        self.registry = registry

    def names(self) -> tuple[str, ...]:
        return self.registry.names()

    def _check(self, value: str) -> str:
        if value not in self.registry:
            raise PydanticCustomError("registry_choice", "unknown {kind} '{value}'; choose one of {choices}",
                                      {"kind": self.registry.kind, "value": value,
                                       "choices": ", ".join(self.registry.names())})
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        out = handler(schema)
        out["enum"] = list(self.registry.names())
        return out


def registry_choice(info: FieldInfo) -> RegistryChoice | None:
    """The RegistryChoice of an options field declared with ``Registry.choice()``, if any."""
    for meta in info.metadata:
        if isinstance(meta, RegistryChoice):
            return meta
    return None
