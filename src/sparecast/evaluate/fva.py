"""Forecast value added (FVA) of planner overrides: the overridden forecast against the model's
forecast on the demand that actually happened.

FVA > 0 means the overrides made the forecast better (a lower error), < 0 worse. Only the
periods an override applied to are scored, on both forecasts, so the comparison is like for
like. Errors are ``forecast - actual`` (``sparecast.evaluate.metrics``' convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sparecast.errors import DataValidationError

__all__ = ["FvaResult", "forecast_value_added"]

_NEEDED = ("unique_id", "ds", "y", "forecast_model", "forecast", "override")


@dataclass
class FvaResult:
    """``per_item``: one row per overridden item (unique_id, override, n_periods, mae_model,
    mae_override, mae_fva, rmsse_model, rmsse_override, rmsse_fva, helped); ``summary``: the
    totals (n_items, n_periods, mae_model, mae_override, mae_fva, rmsse_model, rmsse_override,
    rmsse_fva, share_helped, share_hurt; None where nothing was scored)."""

    per_item: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def forecast_value_added(
    frame: pl.DataFrame, *, scales: Mapping[str, float] | None = None
) -> FvaResult:
    """The FVA of the overrides in ``frame``: unique_id, ds, y (actual), forecast_model (the
    model's forecast), forecast (after the override) and override (the kind applied, null where
    none; those rows are not scored).

    Per item: MAE of both forecasts over its overridden periods, RMSSE (RMSE divided by the
    square root of ``scales[item]``, the in-sample mean squared one-step difference of its
    demand; null without a positive scale) and the differences model - override (``*_fva``,
    > 0: the override helped). ``helped``: the override's MAE is lower. The summary's MAE is over
    all scored periods, its RMSSE the mean over items with a scale, ``share_helped`` /
    ``share_hurt`` the shares of items whose MAE the override lowered / raised."""
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"forecast value added needs the columns {', '.join(missing)} (frame has "
            f"{', '.join(frame.columns)}); build it with ForecastStore.override_forecast_vs_actual"
        )
    scored = frame.filter(pl.col("override").is_not_null() & pl.col("y").is_not_null())
    err = scored.with_columns(
        (pl.col("forecast_model") - pl.col("y")).alias("_em"),
        (pl.col("forecast") - pl.col("y")).alias("_eo"),
    )
    per_item = (
        err.group_by("unique_id", maintain_order=True)
        .agg(
            pl.col("override")
            .drop_nulls()
            .unique(maintain_order=True)
            .str.join(",")
            .alias("override"),
            pl.len().alias("n_periods"),
            pl.col("_em").abs().mean().alias("mae_model"),
            pl.col("_eo").abs().mean().alias("mae_override"),
            (pl.col("_em") ** 2).mean().sqrt().alias("_rmse_model"),
            (pl.col("_eo") ** 2).mean().sqrt().alias("_rmse_override"),
        )
        .sort("unique_id")
    )
    scale = np.array(
        [float((scales or {}).get(i, np.nan)) for i in per_item["unique_id"].to_list()],
        dtype=np.float64,
    )
    root = np.where(scale > 0, np.sqrt(np.where(scale > 0, scale, 1.0)), np.nan)
    per_item = (
        per_item.with_columns(
            (pl.col("_rmse_model") / pl.Series(root)).fill_nan(None).alias("rmsse_model"),
            (pl.col("_rmse_override") / pl.Series(root)).fill_nan(None).alias("rmsse_override"),
        )
        .with_columns(
            (pl.col("mae_model") - pl.col("mae_override")).alias("mae_fva"),
            (pl.col("rmsse_model") - pl.col("rmsse_override")).alias("rmsse_fva"),
            (pl.col("mae_override") < pl.col("mae_model")).alias("helped"),
        )
        .select(
            "unique_id",
            "override",
            "n_periods",
            "mae_model",
            "mae_override",
            "mae_fva",
            "rmsse_model",
            "rmsse_override",
            "rmsse_fva",
            "helped",
        )
    )
    n = per_item.height

    def mean(values: pl.Series) -> float | None:
        kept = values.drop_nulls()
        return float(kept.mean()) if kept.len() else None  # type: ignore[arg-type]

    mae_model = float(err["_em"].abs().mean()) if err.height else None  # type: ignore[arg-type]
    mae_override = float(err["_eo"].abs().mean()) if err.height else None  # type: ignore[arg-type]
    rmsse_model, rmsse_override = mean(per_item["rmsse_model"]), mean(per_item["rmsse_override"])
    summary: dict[str, Any] = {
        "n_items": n,
        "n_periods": err.height,
        "mae_model": mae_model,
        "mae_override": mae_override,
        "mae_fva": mae_model - mae_override
        if mae_model is not None and mae_override is not None
        else None,
        "rmsse_model": rmsse_model,
        "rmsse_override": rmsse_override,
        "rmsse_fva": rmsse_model - rmsse_override
        if rmsse_model is not None and rmsse_override is not None
        else None,
        "share_helped": float(per_item["helped"].sum()) / n if n else None,
        "share_hurt": float((per_item["mae_override"] > per_item["mae_model"]).sum()) / n
        if n
        else None,
    }
    return FvaResult(per_item, summary)
