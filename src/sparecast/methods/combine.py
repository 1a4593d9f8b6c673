"""Combinations of methods: the mean of several methods' forecasts, named ``mean(a,b,...)``.

The hybrid router serves such a combination when ``top_k > 1``; the backtest scores it like a
method. The name is the one home of the members, so every layer reads them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["combination_name", "combination_members", "combine"]


def combination_name(members: Sequence[str]) -> str:
    """``"sba"`` for one method, ``"mean(sba,lightgbm)"`` for the mean of several."""
    return members[0] if len(members) == 1 else f"mean({','.join(members)})"


def combination_members(name: str) -> list[str]:
    """The methods behind a selection entry: ``"mean(sba,lightgbm)"`` -> ``["sba", "lightgbm"]``,
    ``"sba"`` -> ``["sba"]``."""
    if name.startswith("mean(") and name.endswith(")"):
        return [m.strip() for m in name[5:-1].split(",") if m.strip()]
    return [name]


def combine(name: str, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The combination ``name``'s values: the mean of its members' arrays in ``values``
    (forecasts, or forecast errors: the mean of the errors is the error of the mean)."""
    return np.mean([values[m] for m in combination_members(name)], axis=0)
