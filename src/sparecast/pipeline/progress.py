"""The progress callback every pipeline step takes (the CLI draws Rich bars from it)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "no_progress"]

Progress = Callable[[str, int, int], None]
"""progress(label, done, total): called as long steps advance (the CLI draws a Rich bar)."""


def no_progress(label: str, done: int, total: int) -> None:
    """A progress callback that shows nothing (the default of every step)."""
    return None
