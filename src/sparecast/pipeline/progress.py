"""The progress callback every pipeline step takes (the CLI draws Rich bars from it)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "Steps", "no_progress", "no_steps"]

Progress = Callable[[str, int, int], None]
"""progress(label, done, total): called as long steps advance (the CLI draws a Rich bar)."""


def no_progress(label: str, done: int, total: int) -> None:
    """A progress callback that shows nothing (the default of every step)."""
    return None


Steps = Callable[[str], None]
"""steps(name): called when a command reaches the next step (check, load, compute, write, store,
commit, replace, done); the CLI prints a line per step."""


def no_steps(name: str) -> None:
    """A step callback that shows nothing (the default of every command)."""
    return None
