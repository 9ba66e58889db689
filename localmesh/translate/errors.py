"""Errors that name the file, the resource and the field, and a strict reader of manifest fields.

The local mesh must never ignore a field silently: a field it does not implement
would make the local Envoy behave differently from the cluster's. So every
mapping of an Istio spec is read through ``Fields``, which refuses the keys
nobody read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UNSUPPORTED = "is not supported by the local mesh (it runs only on a cluster)"


class TranslationError(ValueError):
    """A manifest the local mesh cannot enforce as Istio would."""


@dataclass(frozen=True)
class Origin:
    """Where a value comes from: file, kind, namespace and name, for error messages."""

    source: str
    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def unsupported(self, path: str, value: Any = None, why: str = "") -> TranslationError:
        what = path if value is None else f"{path}: {value!r}"
        because = f" ({why})" if why else ""
        return TranslationError(f"{self.source}: {self.ref}: {what}{because} {UNSUPPORTED}")

    def invalid(self, path: str, problem: str) -> TranslationError:
        return TranslationError(f"{self.source}: {self.ref}: {path}: {problem}")


class Fields:
    """One mapping of a manifest, read key by key; ``finish`` refuses the keys left unread."""

    def __init__(self, value: Any, path: str, origin: Origin):
        if not isinstance(value, Mapping):
            raise origin.invalid(path, f"must be a mapping, not {type(value).__name__}")
        self.value = value
        self.path = path
        self.origin = origin
        self._read: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.value and self.value[key] is not None

    def raw(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        value = self.value.get(key)
        return default if value is None else value

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise self.origin.invalid(self.at(key), "is required")
            return default
        if not isinstance(value, str):
            raise self.origin.invalid(self.at(key), f"must be a string, not {value!r}")
        return value

    def integer(self, key: str, default: int | None = None, required: bool = False, minimum: int = 0) -> int | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise self.origin.invalid(self.at(key), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.origin.invalid(self.at(key), f"must be an integer, not {value!r}")
        if value < minimum:
            raise self.origin.invalid(self.at(key), f"must be >= {minimum}, not {value}")
        return value

    def number(self, key: str) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.origin.invalid(self.at(key), f"must be a number, not {value!r}")
        return value

    def flag(self, key: str, default: bool | None = None) -> bool | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.origin.invalid(self.at(key), f"must be true or false, not {value!r}")
        return value

    def mapping(self, key: str) -> Fields | None:
        value = self.raw(key)
        return None if value is None else Fields(value, self.at(key), self.origin)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw(key, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.origin.invalid(self.at(key), "must map strings to strings")
        return dict(value)

    def items(self, key: str) -> list[tuple[str, Any]]:
        """The items with their paths (``key[i]``)."""
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise self.origin.invalid(self.at(key), f"must be a list, not {type(value).__name__}")
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def mappings(self, key: str) -> list[Fields]:
        return [Fields(item, path, self.origin) for path, item in self.items(key)]

    def strings(self, key: str) -> list[str]:
        items = self.items(key)
        for path, item in items:
            if not isinstance(item, str):
                raise self.origin.invalid(path, f"must be a string, not {item!r}")
        return [item for _, item in items]

    def finish(self) -> None:
        for key in self.value:
            if key not in self._read and self.value[key] is not None:
                raise self.origin.unsupported(self.at(str(key)))
