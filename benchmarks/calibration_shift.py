"""Where the per-item plan's calibration and its decision backtest disagree (issue 12).

The decision backtest (``evaluate_plan``) sets the policies on the first two thirds of a data set
and simulates the last third; the plan's calibration (``calibrated_targets``) chooses its nominal
targets in a backtest on the last third of that training part (the holdout). This script runs
both for the per-item plan at default settings and prints, per frequency group and per lead-time
class, the holdout's fill rate and demand / stock-value shares at the chosen nominal targets
next to the test's:

- ``holdout``: the calibration backtest re-simulated at the chosen factors per item (items
  measured as the calibration measures them: two protection intervals in the holdout);
- ``holdout, all``: the same simulation measuring every item whose warm-up fits in the holdout
  (what candidate (a), long-lead items unmeasured, changes);
- ``test``: the decision backtest of the plan (as ``evaluate_plan`` runs it);
- ``test at holdout shares``: the test's group fills weighted by the holdout's demand shares
  (the part of the gap that comes from demand moving between groups, candidate (c));
- ``earlier window``: the factors chosen on an earlier holdout (the calibration run on the
  training part without its last third) replayed on the holdout: how much a calibration falls
  short one window out of sample on data the plan sees (candidates (b) and (d)).

Usage: ``nice -n 5 python benchmarks/calibration_shift.py [--skip-carparts] [--skip-oil]
[--targets 0.90,0.95,0.98] [--margin 0]`` (``--margin``: the calibrations'
``inventory.calibration_margin``, default the settings'; data sets and assumed lead times of
``benchmarks/inventory.py``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

from sparecast.config import Settings, load_settings
from sparecast.inventory.calibration import (
    Calibration,
    calibrated_targets,
    calibration_groups,
    calibration_window,
    factors_by_group,
)
from sparecast.inventory.decide import calibration_rules, plan_policy
from sparecast.inventory.policy import (
    distribution_policy,
    order_quantity,
    protection_review_periods,
)
from sparecast.inventory.simulate import (
    GROUP_NAMES,
    frequency_groups,
    nominal_targets,
    protection_warmup,
    simulate_policy,
)
from sparecast.methods.distributions import lead_time_demand

sys.path.insert(0, str(Path(__file__).resolve().parent))
bench = importlib.import_module("inventory")


def _calibrate(
    y: np.ndarray, lts: list[np.ndarray], t: float, q: np.ndarray, settings: Settings, ds: dict
) -> Calibration:
    shift, pol_rule = calibration_rules(settings, ds["period_days"])
    n = y.shape[0]
    cost = np.broadcast_to(np.asarray(ds["unit_cost"], dtype=np.float64), (n,))
    return calibrated_targets(
        y,
        lts,
        np.full(n, t),
        q,
        settings,
        period_days=ds["period_days"],
        adjust_ltd=shift,
        adjust_policy=pol_rule,
        unit_cost=cost,
    )


def _replay(
    y: np.ndarray,
    lts: list[np.ndarray],
    holdout: int,
    nominal: np.ndarray,
    q: np.ndarray,
    warm: np.ndarray,
    settings: Settings,
    ds: dict,
) -> dict[str, np.ndarray]:
    """Policies set on ``y[:, :-holdout]`` at ``nominal`` with the plan's rules, simulated on the
    last ``holdout`` periods after ``warm`` (per item; >= holdout: not measured)."""
    inv = settings.inventory
    n, n_t = y.shape
    fit, check = y[:, : n_t - holdout], y[:, n_t - holdout :]
    review = max(1, round(inv.review_period_days / ds["period_days"]))
    shift, pol_rule = calibration_rules(settings, ds["period_days"])
    ltd = lead_time_demand(
        fit,
        lts,
        review_period=protection_review_periods(inv.policy, review),
        method=inv.distribution,
        n_samples=inv.n_samples,
        seed=inv.seed,
    )
    ltd = shift(fit, ltd)
    cost = np.nan_to_num(
        np.broadcast_to(np.asarray(ds["unit_cost"], dtype=np.float64), (n,)), nan=1.0
    )
    pol = distribution_policy(ltd, nominal, q, target_type="fill_rate", policy=inv.policy)
    pol, replenish = pol_rule(fit, ltd, pol, nominal, cost)
    sim = simulate_policy(
        check,
        pol.reorder_point,
        q,
        lts,
        policy=inv.policy,
        review_period=review,
        warmup=np.minimum(warm, holdout),
        seed=inv.seed + 7,
        replenish=replenish,
        unit_cost=cost,
    ).per_item
    return {
        "demand": sim["demand"].to_numpy(),
        "filled": sim["filled"].to_numpy(),
        "value": np.nan_to_num(sim["avg_on_hand_value"].to_numpy()),
    }


def _test(
    train: np.ndarray,
    test: np.ndarray,
    lts: list[np.ndarray],
    t: float,
    q: np.ndarray,
    settings: Settings,
    ds: dict,
) -> dict[str, np.ndarray]:
    inv = settings.inventory
    n = train.shape[0]
    cost = np.broadcast_to(np.asarray(ds["unit_cost"], dtype=np.float64), (n,))
    review = max(1, round(inv.review_period_days / ds["period_days"]))
    d = plan_policy(train, lts, t, q, settings, period_days=ds["period_days"], unit_cost=cost)
    warm = protection_warmup(lts, inv.policy, review)
    sim = simulate_policy(
        test,
        d.policy.reorder_point,
        q,
        lts,
        policy=inv.policy,
        review_period=review,
        unit_cost=cost,
        warmup=np.minimum(warm, test.shape[1]),
        seed=inv.seed + 1,
        replenish=d.replenished,
    ).per_item
    return {
        "demand": sim["demand"].to_numpy(),
        "filled": sim["filled"].to_numpy(),
        "value": np.nan_to_num(sim["avg_on_hand_value"].to_numpy()),
    }


def _cells(r: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> dict[str, tuple]:
    tot_d, tot_v = r["demand"].sum(), r["value"].sum()
    out = {}
    for name, m in masks.items():
        d = r["demand"][m].sum()
        out[name] = (
            r["filled"][m].sum() / d if d > 0 else np.nan,
            d / tot_d if tot_d > 0 else np.nan,
            r["value"][m].sum() / tot_v if tot_v > 0 else np.nan,
        )
    return out


def _fmt(c: tuple) -> str:
    f, s, v = c
    return "\u2014" if not np.isfinite(f) else f"{f:.2%} ({s:.0%} / {v:.0%})"


def report(ds: dict, targets: list[float], margin: float | None) -> None:
    extra = {} if margin is None else {"calibration_margin": margin}
    settings = load_settings(inventory={"service_mode": "item", **extra})
    inv = settings.inventory
    h = np.maximum(np.asarray(ds["y"], dtype=np.float64), 0.0)
    n, n_t = h.shape
    split = n_t * 2 // 3
    train, test = h[:, :split], h[:, split:]
    lts = [np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in ds["lead_times"]]
    q = order_quantity(train.mean(axis=1), inv.order_cover_days / ds["period_days"])
    review = max(1, round(inv.review_period_days / ds["period_days"]))
    win = calibration_window(split, lts, settings, period_days=ds["period_days"])
    s = win.sample
    hold = win.holdout
    fit_groups = frequency_groups(train[:, : split - hold])
    train_groups = frequency_groups(train)
    warm = protection_warmup(lts, inv.policy, review)
    hist = train.sum(axis=1) > 0
    cost = np.broadcast_to(np.asarray(ds["unit_cost"], dtype=np.float64), (n,))
    # the calibration's keys: frequency group and value class of the fit part
    fit_keys = np.zeros(n)  # as the calibration computes them: on its sample's rows
    fit_keys[s] = calibration_groups(
        train[s, : split - hold], cost[s], q[s], inv.calibration_value_classes
    )
    ds_s = dict(ds, unit_cost=cost[s])  # the calibration sample's rows
    # the calibration's items with history: demand in its fit part
    fit_hist = fit_groups[s] > 0
    print(
        f"\n## {ds['name']}: training {split} periods (calibration holdout {hold}, fit "
        f"{split - hold}), test {n_t - split}; {int(win.measured.sum())} of {n} items measured "
        f"in the holdout (warm-up <= {hold // 2}); sample {s.size}\n"
    )
    print("cells: fill rate (demand share / stock-value share) over items with history\n")
    # earlier window: the calibration on the training part without its last third
    early_split = split - hold
    early_win = calibration_window(early_split, lts, settings, period_days=ds["period_days"])
    for t in targets:
        cal = _calibrate(train[s], [lts[i] for i in s], t, q[s], settings, ds_s)
        assert cal.curves is not None and cal.factors is not None
        per_item_f = factors_by_group(cal.curves.keys, cal.factors, fit_keys[s], np.full(s.size, t))
        nominal_fit = nominal_targets(t, per_item_f)
        warm_meas = np.where(win.measured[s], warm[s], hold)
        ho = _replay(
            train[s], [lts[i] for i in s], hold, nominal_fit, q[s], warm_meas, settings, ds_s
        )
        ho_all = _replay(
            train[s], [lts[i] for i in s], hold, nominal_fit, q[s], warm[s], settings, ds_s
        )
        te = _test(train, test, lts, t, q, settings, ds)
        # earlier window: calibrate on train[:, :early_split], replay those factors on the holdout
        early = "\u2014"
        if not early_win.why:
            cal_e = _calibrate(train[s, :early_split], [lts[i] for i in s], t, q[s], settings, ds_s)
            if cal_e.calibrated and cal_e.curves is not None and cal_e.factors is not None:
                fe = factors_by_group(
                    cal_e.curves.keys, cal_e.factors, fit_keys[s], np.full(s.size, t)
                )
                ee = _replay(
                    train[s], [lts[i] for i in s], hold, nominal_targets(t, fe), q[s],
                    warm_meas, settings, ds_s,
                )  # fmt: skip
                m = fit_hist
                pred_e = cal_e.outcome.get(t, (np.nan, np.nan))[0]
                got = ee["filled"][m].sum() / max(ee["demand"][m].sum(), 1e-12)
                early = (
                    f"predicted {pred_e:.2%} on its holdout, achieved {got:.2%} one window later"
                )
        pred = cal.outcome.get(t, (np.nan, np.nan))[0]
        print(f"### target {t:.0%}: calibration predicts {pred:.2%}; earlier window: {early}\n")
        gs = [g for g in range(1, len(GROUP_NAMES)) if (train_groups[hist] == g).any()]
        # groups: the holdout by the fit part's groups, the test by the training part's
        masks_h = {"all": fit_hist} | {GROUP_NAMES[g]: fit_groups[s] == g for g in gs}
        masks_t = {"all": hist} | {GROUP_NAMES[g]: (train_groups == g) & hist for g in gs}
        lt_class = np.minimum(warm, 8)
        lcs = [int(c) for c in np.unique(lt_class[hist])]
        lname = {c: f"warm-up {c}" + ("+" if c == 8 else "") for c in lcs}
        masks_hl = {lname[c]: (lt_class[s] == c) & fit_hist for c in lcs}
        masks_tl = {lname[c]: (lt_class == c) & hist for c in lcs}
        rows = {
            "holdout (calibration)": _cells(ho, masks_h | masks_hl),
            "holdout, all items": _cells(ho_all, masks_h | masks_hl),
            "test": _cells(te, masks_t | masks_tl),
        }
        cols = list(masks_h) + list(masks_hl)
        print("| window | " + " | ".join(cols) + " |")
        print("|---|" + "---:|" * len(cols))
        for name, cells in rows.items():
            print(f"| {name} | " + " | ".join(_fmt(cells[c]) for c in cols) + " |")
        # test fill at the holdout's group demand shares
        hc, tc = rows["holdout (calibration)"], rows["test"]

        def _mix(names: list[str], hc: dict = hc, tc: dict = tc) -> float:
            """The test's fills of ``names`` at the holdout's demand shares (renormalised)."""
            ok = [c for c in names if np.isfinite(tc[c][0]) and np.isfinite(hc[c][1])]
            w = np.array([hc[c][1] for c in ok])
            return float(np.dot(w / w.sum(), [tc[c][0] for c in ok])) if ok else np.nan

        print(
            f"\ntest at the holdout's group demand shares: {_mix([GROUP_NAMES[g] for g in gs]):.2%}"
        )
        print(
            "test at the holdout's lead-time class shares (measured classes only): "
            f"{_mix([lname[c] for c in lcs]):.2%}"
        )
        # growth / decay between fit+holdout and test per item (training mean vs test mean)
        ratio = test.mean(axis=1) / np.maximum(train.mean(axis=1), 1e-12)
        ratio_h = train[:, split - hold :].mean(axis=1) / np.maximum(
            train[:, : split - hold].mean(axis=1), 1e-12
        )
        for label, r, res, mh in (
            ("holdout", ratio_h[s], ho, fit_hist),
            ("test", ratio, te, hist),
        ):
            tot = res["demand"][mh].sum()
            parts = []
            for nm, m in (
                ("grew >2x", r > 2),
                ("stable", (r >= 0.5) & (r <= 2)),
                ("fell <0.5x", r < 0.5),
            ):
                mm = m & mh
                d = res["demand"][mm].sum()
                fill = res["filled"][mm].sum() / max(d, 1e-12)
                parts.append(f"{nm}: {d / tot:.0%} of demand at {fill:.1%}")
            print(f"{label} trend vs its fit part: " + "; ".join(parts))
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-carparts", action="store_true")
    ap.add_argument("--skip-oil", action="store_true")
    ap.add_argument("--targets", default="0.90,0.95,0.98")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=None, help="inventory.calibration_margin")
    args = ap.parse_args()
    targets = [float(x) for x in args.targets.split(",")]
    if not args.skip_carparts:
        report(bench.carparts_dataset(bench.CARPARTS, args.seed), targets, args.margin)
    if not args.skip_oil:
        report(bench.oil_dataset(bench.OIL, args.seed), targets, args.margin)


if __name__ == "__main__":
    main()
