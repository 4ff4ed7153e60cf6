"""Reversible patches of another library's class methods, for the bridges in this package.

A bridge patches a class's method in place (so classes bound early and subclasses see it),
once however often it installs, and can put back the very original object (an identity a
test checks). One `Patches` per bridge module.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Patches"]


class Patches:
    """The methods one bridge replaced, and how to put them back."""

    def __init__(self) -> None:
        self._originals: dict[tuple[type, str], Any] = {}

    def patch(self, owner: Any, name: str, wrapper: Callable[[Any], Callable]) -> None:
        """Replace ``owner.name`` (a class's method or a module's function) by ``wrapper(original)``;
        a second call for it does nothing."""
        key = (owner, name)
        if key in self._originals:
            return
        original = vars(owner)[name]  # the class's own attribute, not one it inherits
        self._originals[key] = original
        setattr(owner, name, wrapper(original))

    def restore(self) -> None:
        """Put every original method back (identity preserved)."""
        for (cls, name), original in self._originals.items():
            setattr(cls, name, original)
        self._originals.clear()

    def __bool__(self) -> bool:
        return bool(self._originals)
