"""Threads over blocks of items and the memo of shared levels: the same forecasts bit for bit as
one single-threaded pass per method, and the passes the memo saves, counted."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sparecast.core import forecast_arrays
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.methods import _numba, _work, forecast_matrix
from sparecast.methods import intermittent as im
from sparecast.methods import robust as rb

H = 3


def _panel(n_items: int = 300, n: int = 90, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.choice([0.01, 0.05, 0.2, 0.8], n_items)[:, None]
    y = np.where(rng.random((n_items, n)) < p, rng.integers(1, 20, (n_items, n)), 0)
    y[0] = 0  # all zero
    y[1, :-1] = 0  # one demand, last period
    return y.astype(np.float32)


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    yield
    _work.set_threads(None)


KERNELS = {
    "croston": lambda y: im.croston(y, H, alpha=0.1),
    "sba": lambda y: im.sba(y, H, alpha=0.2),
    "croston_optimized": lambda y: im.croston_optimized(y, H),
    "tsb": lambda y: im.tsb(y, H),
    "tsb_fixed": lambda y: im.tsb(y, H, alpha_d=0.1, alpha_p=0.3),
    "adida": lambda y: im.adida(y, H),
    "imapa": lambda y: im.imapa(y, H),
    "mapa": lambda y: im.mapa(y, H, max_level=6),
    "robust": lambda y: rb.robust(y, H),
}


@pytest.mark.parametrize("name", KERNELS)
def test_threads_give_identical_forecasts(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 16 rows on 1, 2 and 3 threads (uneven last block): equal to one pass."""
    monkeypatch.setattr(_work, "MIN_BLOCK_ITEMS", 16)
    y = _panel()
    _work.set_threads(1)
    one = KERNELS[name](y)
    for threads in (2, 3):
        _work.set_threads(threads)
        np.testing.assert_array_equal(KERNELS[name](y), one)


def test_by_blocks_splits_rows_and_concatenates_tuples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_work, "MIN_BLOCK_ITEMS", 10)
    y = np.arange(105, dtype=np.float64)[:, None] * np.ones((1, 4))
    seen: list[int] = []

    def level(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(rows.shape[0])
        return rows[:, 0], rows.sum(axis=1)

    _work.set_threads(2)
    first, total = _work.by_blocks(level, y)
    assert sorted(seen) == [7] + [14] * 7  # 2 threads x 4 blocks of ceil(105 / 8) rows
    np.testing.assert_array_equal(first, np.arange(105.0))
    np.testing.assert_array_equal(total, 4 * np.arange(105.0))
    seen.clear()
    _work.set_threads(8)  # capped at items // MIN_BLOCK_ITEMS = 10 blocks
    _work.by_blocks(level, y)
    assert len(seen) == 10
    seen.clear()
    _work.set_threads(1)
    _work.by_blocks(level, y)
    assert seen == [105]  # one pass in the calling thread


def test_thread_setting() -> None:
    assert _work.kernel_threads() == _work.available_cores() >= 1
    _work.set_threads(3)
    assert _work.kernel_threads() == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(MethodError, match="threads must be a whole number"):
            _work.set_threads(bad)  # type: ignore[arg-type]


def test_adida_imapa_pass_equals_the_separate_kernels() -> None:
    y = _panel(n=200)
    adida, imapa = _numba.adida_imapa_levels(y, 0.1, 0.3)
    np.testing.assert_array_equal(adida, _numba.aggregated_levels(y, False, 0.1, 0.3))
    np.testing.assert_array_equal(imapa, _numba.aggregated_levels(y, True, 0.1, 0.3))


def _count_passes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = dict.fromkeys(("croston_levels", "aggregated_levels", "adida_imapa_levels"), 0)
    for name in calls:
        kernel = getattr(_numba, name)

        def counted(*args: object, _kernel=kernel, _name=name) -> object:
            calls[_name] += 1
            return _kernel(*args)

        monkeypatch.setattr(_numba, name, counted)
    return calls


@pytest.mark.parametrize(
    "methods",
    [
        ["croston", "sba", "adida", "imapa"],
        ["adida", "croston_optimized", "sba", "robust", "combo_median", "tsb", "imapa"],
        ["adida", "sba"],
        ["imapa", "adida", "croston"],
    ],
)
def test_shared_levels_give_identical_forecasts(
    methods: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """forecast_arrays (one memo for the call) equals each method on its own, and runs Croston's
    level once per alpha and the aggregation pass once."""
    _work.set_threads(1)
    y = _panel()
    alone = {m: forecast_matrix(y, H, m) for m in methods}
    calls = _count_passes(monkeypatch)
    panel = DemandPanel(
        y=y, item_ids=np.arange(len(y)).astype(str), start=np.datetime64("2026-01-01")
    )
    shared = forecast_arrays(panel, H, methods)
    assert list(shared) == methods
    for m in methods:
        np.testing.assert_array_equal(shared[m], alone[m], err_msg=m)
    croston_alphas = {0.1 for m in methods if m in ("croston", "sba", "robust", "combo_median")}
    croston_alphas |= {0.0} if "croston_optimized" in methods else set()
    assert calls["croston_levels"] == len(croston_alphas)
    uses_imapa = any(m in methods for m in ("imapa", "robust", "combo_median"))
    assert calls["adida_imapa_levels"] == int(uses_imapa)
    assert calls["aggregated_levels"] == int("adida" in methods and not uses_imapa)


def test_memo_only_for_that_array_and_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    _work.set_threads(1)
    y = _panel()
    calls = _count_passes(monkeypatch)
    with _work.shared_levels(y):
        a = im.croston(y, H)
        b = im.sba(y, H)
        im.croston(y.copy(), H)  # another array: computed again
        assert calls["croston_levels"] == 2
        im.croston(y, H, alpha=0.3)  # another alpha: computed again
        assert calls["croston_levels"] == 3
    np.testing.assert_array_equal(b, a * 0.95)
    im.croston(y, H)  # the block is closed
    assert calls["croston_levels"] == 4
    with _work.shared_levels(y):
        im.adida(y, H)  # no IMAPA announced: the cheap ADIDA pass
        im.imapa(y, H)
        im.adida(y, H)  # remembered
    assert (calls["aggregated_levels"], calls["adida_imapa_levels"]) == (1, 1)


def test_nested_blocks_on_the_same_array_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller's block around several forecast_arrays calls (one method each) shares levels."""
    _work.set_threads(1)
    y = _panel()
    panel = DemandPanel(
        y=y, item_ids=np.arange(len(y)).astype(str), start=np.datetime64("2026-01-01")
    )
    calls = _count_passes(monkeypatch)
    names = ["croston", "sba", "adida", "imapa", "robust"]
    with _work.shared_levels(panel.y, names):
        one_by_one = {}
        for name in names:
            one_by_one.update(forecast_arrays(panel, H, [name]))
        with _work.shared_levels(y.copy()):  # another array inside: its own results
            im.croston(y, H)
    assert calls == {"croston_levels": 2, "aggregated_levels": 0, "adida_imapa_levels": 1}
    for name in names:
        np.testing.assert_array_equal(one_by_one[name], forecast_matrix(y, H, name))
