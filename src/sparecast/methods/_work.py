"""How the classical kernels share work: threads over blocks of items, and a memo of the
per-item levels within one forecast call.

Threads: the compiled loops (``_numba.py``) release the GIL and items are independent, so a
kernel's per-item level is computed on blocks of rows in a thread pool and the blocks are
concatenated: the same numbers as one pass, bit for bit. The pool has :func:`kernel_threads`
threads: all the cores this process may use unless :func:`set_threads` caps it (the ``threads``
setting, ``SPARECAST_THREADS``; 1 = one pass in the calling thread).

Memo: inside ``with shared_levels(y):`` a kernel called on that very array (the same object)
computes each intermediate result once: Croston's level serves Croston and SBA (SBA is Croston x
(1 - alpha/2)), one IMAPA pass also gives ADIDA (ADIDA's level is IMAPA's top aggregation level),
and the combinations (``robust``) reuse their members' levels. ``forecast_arrays`` and the
backtest's per-window loop open one around the methods of a call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparecast.errors import MethodError

__all__ = [
    "MIN_BLOCK_ITEMS",
    "available_cores",
    "set_threads",
    "kernel_threads",
    "by_blocks",
    "shared_levels",
    "memoized",
    "will_run",
    "has_memo",
    "remember",
]

MIN_BLOCK_ITEMS = 1024
"""Fewest items per thread: below twice this a kernel runs in one pass (threads cost more)."""
_BLOCKS_PER_THREAD = 4  # several blocks per thread even out items of unequal cost

_threads: int | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None) -> None:
    """Cap the threads of the classical kernels at ``n`` (None: every available core; 1: one
    pass in the calling thread, no pool). Process-wide."""
    global _threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise MethodError(f"threads must be a whole number >= 1 or None, got {n!r}")
    _threads = n


def kernel_threads() -> int:
    """Threads the classical kernels use: the :func:`set_threads` cap, else every core."""
    return _threads if _threads is not None else available_cores()


def by_blocks(level: Callable[[np.ndarray], Any], y: np.ndarray) -> Any:
    """``level(y)`` for a per-item function ``level`` (rows in, one value per row out: an array
    ``[items]`` or a tuple of them), computed on blocks of rows in :func:`kernel_threads`
    threads and concatenated; identical to ``level(y)`` since rows are independent."""
    n_items = y.shape[0]
    threads = min(kernel_threads(), n_items // MIN_BLOCK_ITEMS)
    if threads <= 1:
        return level(y)
    n_blocks = min(threads * _BLOCKS_PER_THREAD, n_items // MIN_BLOCK_ITEMS)
    size = math.ceil(n_items / n_blocks)
    bounds = range(0, n_items, size)
    with ThreadPoolExecutor(threads, thread_name_prefix="sparecast-kernel") as pool:
        parts = list(pool.map(lambda lo: level(y[lo : lo + size]), bounds))
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    return np.concatenate(parts)


@dataclass
class _Memo:
    y: np.ndarray
    methods: frozenset[str]
    results: dict[Hashable, Any] = field(default_factory=dict)


_memo: ContextVar[_Memo | None] = ContextVar("sparecast_kernel_memo", default=None)


@contextmanager
def shared_levels(y: np.ndarray, methods: Iterable[str] = ()) -> Iterator[None]:
    """Within the block, kernels called on ``y`` itself (the same array object, unchanged)
    compute each memoized intermediate result once (:func:`memoized`). ``methods``: the method
    names the block will run, a hint (:func:`will_run`) that lets a kernel compute a result a
    later method needs in the same pass. A block inside a block on the same ``y`` shares its
    results (so a caller may open one around several ``forecast_arrays`` calls); on another
    array, the inner block counts until it closes."""
    outer = _memo.get()
    if outer is not None and outer.y is y:
        memo = _Memo(y, outer.methods | frozenset(methods), outer.results)
    else:
        memo = _Memo(y, frozenset(methods))
    token = _memo.set(memo)
    try:
        yield
    finally:
        _memo.reset(token)


def memoized(y: np.ndarray, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, remembered under ``key`` while a :func:`shared_levels` block on this very
    ``y`` is open (computed every time otherwise)."""
    memo = _memo.get()
    if memo is None or memo.y is not y:
        return compute()
    if key not in memo.results:
        memo.results[key] = compute()
    return memo.results[key]


def will_run(y: np.ndarray, names: Iterable[str]) -> bool:
    """Whether the open :func:`shared_levels` block on ``y`` said it runs one of ``names``."""
    memo = _memo.get()
    return memo is not None and memo.y is y and not memo.methods.isdisjoint(names)


def has_memo(y: np.ndarray, key: Hashable) -> bool:
    """Whether ``key`` is already remembered for ``y`` in the open :func:`shared_levels` block."""
    memo = _memo.get()
    return memo is not None and memo.y is y and key in memo.results


def remember(y: np.ndarray, key: Hashable, value: Any) -> None:
    """Remember ``value`` under ``key`` for ``y`` when a :func:`shared_levels` block on it is
    open (nothing otherwise)."""
    memo = _memo.get()
    if memo is not None and memo.y is y:
        memo.results[key] = value
