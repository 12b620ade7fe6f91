"""Type guards for values read from JSON, TOML or a validator's raw input (typed `Any` or `object`).

`isinstance(value, dict)` narrows to a dict of unknown keys and values, which strict type checking
reports wherever it is used; these say what such a value is: a dict or a list of anything.
"""

from __future__ import annotations

from typing import Any, TypeGuard


def is_dict(value: object) -> TypeGuard[dict[Any, Any]]:
    return isinstance(value, dict)


def is_list(value: object) -> TypeGuard[list[Any]]:
    """A list (what JSON decodes an array to)."""
    return isinstance(value, list)


def is_sequence(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    """A list or a tuple (not a string)."""
    return isinstance(value, list | tuple)


__all__ = ["is_dict", "is_list", "is_sequence"]
