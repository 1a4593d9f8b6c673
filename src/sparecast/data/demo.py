"""A synthetic spare-parts / MRO ERP: items, demand, suppliers, purchase orders, receipts, stock.

The generator is vectorised with numpy and deterministic by ``seed``. Demand is generated sparse
(only the days with an issue are materialised), so 100,000 items x 730 days fits in a few seconds
and a few hundred MB. The demand profile mimics a maintenance store:

* ~4% of items have no demand at all in the window (slow movers, insurance spares);
* ~56% are very sparse (demand on 0.3-2% of days) and ~30% sparse (2-8% of days),
  so ~90% of items have demand on fewer than 10% of days;
* ~7% are medium movers (10-35% of days) and ~3% regular high-volume items (40-95% of days),
  both with a weekly pattern (busy Monday-Friday, little on Saturday, almost nothing on Sunday);
* sizes are lumpy (negative binomial around an item-specific log-normal mean, plus occasional
  big orders 3-10x the usual size); ~0.5% of issues are followed by a return (negative row).

Purchase orders start 180 days before the window; each item has a main supplier (~10% of the
orders go to a second one). Suppliers differ in quoted lead time, variability and punctuality;
most receipts are on time, some late, ~10% arrive in two partial receipts, and receipts after
``end_date`` are not booked yet, so the last orders are still open.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from sparecast.data.schema import TABLE_SCHEMAS
from sparecast.data.sources import write_tables

__all__ = ["generate_demo_erp", "write_tables", "CATEGORIES"]

# category: (share of items, log-mean unit cost, log-sd, unit, mean issue size, parts)
CATEGORIES: dict[str, tuple[float, float, float, str, float, tuple[str, ...]]] = {
    "bearings": (0.16, 3.6, 1.0, "EA", 2.0, ("Ball bearing", "Roller bearing", "Pillow block")),
    "seals": (0.12, 2.3, 0.9, "EA", 3.0, ("O-ring", "Shaft seal", "Gasket", "Mechanical seal")),
    "filters": (0.10, 3.0, 0.8, "EA", 3.0, ("Oil filter", "Air filter", "Hydraulic filter")),
    "electrical": (0.16, 3.8, 1.3, "EA", 1.5, ("Contactor", "Fuse", "Relay", "Sensor", "Motor")),
    "hydraulics": (0.10, 4.5, 1.1, "EA", 1.3, ("Valve", "Hose assembly", "Cylinder", "Pump")),
    "fasteners": (0.12, 0.5, 0.8, "EA", 25.0, ("Hex bolt", "Nut", "Washer", "Anchor")),
    "belts": (0.07, 3.2, 0.8, "EA", 1.5, ("V-belt", "Timing belt", "Conveyor belt")),
    "pneumatics": (0.07, 3.5, 1.0, "EA", 1.5, ("Air cylinder", "Solenoid valve", "Fitting")),
    "lubricants": (0.05, 2.5, 0.7, "L", 8.0, ("Grease", "Gear oil", "Hydraulic oil")),
    "safety": (0.05, 2.0, 0.9, "EA", 6.0, ("Gloves", "Ear plugs", "Safety glasses")),
}

_COUNTRIES = ("DE", "SE", "FR", "IT", "US", "PL", "CZ", "NL", "CN", "JP", "GB", "ES")
_NAME_A = (
    "Nordic",
    "Atlas",
    "Apex",
    "Delta",
    "Vulcan",
    "Hansa",
    "Baltic",
    "Summit",
    "Rhine",
    "Orion",
    "Titan",
    "Alpine",
    "Meridian",
    "Crown",
    "Pioneer",
    "Zenith",
)
_NAME_B = (
    "Industrial Supply",
    "Bearings",
    "Hydraulics",
    "Components",
    "Technik",
    "Parts",
    "Electric",
    "Seals",
    "Fluid Power",
    "Fasteners",
    "Distribution",
    "Engineering",
)
_NAME_C = ("GmbH", "AB", "Ltd", "S.A.", "Inc", "Sp. z o.o.", "BV", "S.r.l.")

# demand profile: (share of items, low, high) of the share of days with demand
_PROFILES = (
    ("none", 0.04, 0.0, 0.0),
    ("very_sparse", 0.56, 0.003, 0.02),
    ("sparse", 0.30, 0.02, 0.08),
    ("medium", 0.07, 0.10, 0.35),
    ("regular", 0.03, 0.40, 0.95),
)
# relative demand by weekday (Mon..Sun) of medium and regular items
_WEEKDAY = np.array([1.25, 1.15, 1.1, 1.1, 1.0, 0.3, 0.1])
_PRE_DAYS = 180  # purchase orders start this many days before the demand window
_DENSE_CHUNK = 4000  # frequent items are drawn dense in chunks of this many items


def generate_demo_erp(
    n_items: int = 2016,
    n_days: int = 365,
    seed: int = 0,
    end_date: date = date(2026, 10, 31),
) -> dict[str, pl.DataFrame]:
    """A synthetic spare-parts ERP as canonical tables, deterministic by ``seed``.

    Returns ``items, demand, suppliers, purchase_orders, receipts, stock`` (polars frames with
    the canonical columns and types). The demand window is the ``n_days`` days ending with
    ``end_date`` (inclusive); stock is as of ``end_date``.
    """
    if n_items < 1 or n_days < 1:
        raise ValueError(f"n_items and n_days must be >= 1, got {n_items}, {n_days}")
    rng = np.random.default_rng(seed)
    end = np.datetime64(end_date, "D")
    start = end - (n_days - 1)

    items, cat_idx, mean_size = _items(rng, n_items)
    profile, rate = _profiles(rng, n_items)
    demand_idx, demand_day, demand_qty = _demand(
        rng, profile, rate, mean_size, n_days, int((start.astype(np.int64) + 3) % 7)
    )
    item_ids = items["item_id"]
    demand = pl.DataFrame(
        {
            "item_id": item_ids.gather(demand_idx),
            "date": start + demand_day,
            "quantity": demand_qty,
        },
        schema=TABLE_SCHEMAS["demand"],
    )
    suppliers, sup_cat, lt_mean, lt_cv, on_time = _suppliers(rng, n_items)
    main_sup = _main_suppliers(rng, cat_idx, sup_cat)
    unit_cost = items["unit_cost"].to_numpy()
    daily_mean = (
        np.bincount(demand_idx, weights=np.maximum(demand_qty, 0), minlength=n_items) / n_days
    )
    pos, receipts = _purchase_orders(
        rng,
        item_ids,
        daily_mean,
        unit_cost,
        main_sup,
        lt_mean,
        lt_cv,
        on_time,
        start,
        end,
        suppliers["supplier_id"],
    )
    stock = _stock(rng, item_ids, daily_mean, lt_mean[main_sup], end)
    return {
        "items": items,
        "demand": demand,
        "suppliers": suppliers,
        "purchase_orders": pos,
        "receipts": receipts,
        "stock": stock,
    }


# --------------------------------------------------------------------------- items
def _items(rng: np.random.Generator, n: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    names = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in names])
    cat = rng.choice(len(names), size=n, p=shares / shares.sum())
    mu = np.array([CATEGORIES[c][1] for c in names])[cat]
    sd = np.array([CATEGORIES[c][2] for c in names])[cat]
    unit_cost = np.round(np.exp(rng.normal(mu, sd)), 2).clip(0.05, None)
    units = np.array([CATEGORIES[c][3] for c in names], dtype=object)[cat]
    size_base = np.array([CATEGORIES[c][4] for c in names])[cat]
    mean_size = size_base * np.exp(rng.normal(0.0, 0.6, n))
    width = max(6, len(str(n)))
    ids = [f"P{i:0{width}d}" for i in range(1, n + 1)]
    # descriptions: "<part> <code>", e.g. "Ball bearing 6204-2RS"
    part_pick = rng.integers(0, 1_000_000, n)
    codes = rng.integers(100, 9999, n)
    parts = [CATEGORIES[names[c]][5] for c in range(len(names))]
    desc = [
        f"{parts[c][k % len(parts[c])]} {code}"
        for c, k, code in zip(cat.tolist(), part_pick.tolist(), codes.tolist(), strict=True)
    ]
    active = rng.random(n) > 0.03
    items = pl.DataFrame(
        {
            "item_id": ids,
            "description": desc,
            "category": np.array(names, dtype=object)[cat],
            "unit_cost": unit_cost,
            "unit": units,
            "active": active,
        },
        schema=TABLE_SCHEMAS["items"],
    )
    return items, cat, mean_size


def _profiles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    shares = np.array([p[1] for p in _PROFILES])
    profile = rng.choice(len(_PROFILES), size=n, p=shares / shares.sum())
    lo = np.array([p[2] for p in _PROFILES])[profile]
    hi = np.array([p[3] for p in _PROFILES])[profile]
    # log-uniform within the band: many items near the sparse end
    with np.errstate(divide="ignore"):
        rate = np.where(
            lo > 0,
            np.exp(rng.uniform(np.log(np.maximum(lo, 1e-9)), np.log(np.maximum(hi, 1e-9)))),
            0.0,
        )
    return profile, rate


# --------------------------------------------------------------------------- demand
def _demand(
    rng: np.random.Generator,
    profile: np.ndarray,
    rate: np.ndarray,
    mean_size: np.ndarray,
    n_days: int,
    first_weekday: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse demand events: (item index, day offset, quantity), returns included."""
    frequent = profile >= 3  # medium and regular: weekly pattern, drawn dense in chunks
    sparse_items = np.flatnonzero(~frequent & (rate > 0))
    # Sparse items: number of demand days ~ Binomial, days uniform (duplicates merged).
    counts = rng.binomial(n_days, rate[sparse_items])
    s_idx = np.repeat(sparse_items.astype(np.int64), counts)
    key = s_idx * n_days + rng.integers(0, n_days, s_idx.size)
    key.sort()
    if key.size:
        key = key[np.concatenate([[True], np.diff(key) != 0])]

    # Frequent items: Bernoulli per day with a weekday profile (Mon..Sun), in bounded chunks.
    dense_items = np.flatnonzero(frequent)
    weekday = (first_weekday + np.arange(n_days)) % 7
    week_factor = _WEEKDAY[weekday] / _WEEKDAY.mean()
    parts = [key]
    for lo in range(0, dense_items.size, _DENSE_CHUNK):
        chunk = dense_items[lo : lo + _DENSE_CHUNK]
        prob = np.minimum(rate[chunk, None] * week_factor[None, :], 0.995).astype(np.float32)
        hit = rng.random((chunk.size, n_days), dtype=np.float32) < prob
        flat = np.flatnonzero(hit)
        parts.append(chunk[flat // n_days].astype(np.int64) * n_days + flat % n_days)
    key = np.concatenate(parts)
    key.sort()
    idx, day = key // n_days, key % n_days

    # Lumpy sizes: 1 + negative binomial (gamma-Poisson, dispersion 1.5) around the item's mean;
    # frequent items draw larger (consumables); 2% of issues are big orders 3-10x.
    m = mean_size[idx] * np.where(frequent[idx], 2.5, 1.0)
    r_disp = 1.5
    qty = 1.0 + rng.poisson(rng.gamma(r_disp, np.maximum(m - 1.0, 1e-3) / r_disp))
    big = rng.random(idx.size) < 0.02
    qty[big] = np.ceil(qty[big] * rng.uniform(3.0, 10.0, int(big.sum())))

    # Returns: ~0.5% of issues come back 1-30 days later (part or all of the quantity).
    ret = np.flatnonzero(rng.random(idx.size) < 0.005)
    r_day = day[ret] + rng.integers(1, 31, ret.size)
    keep = r_day < n_days
    ret, r_day = ret[keep], r_day[keep]
    r_qty = -np.maximum(1.0, np.floor(qty[ret] * rng.uniform(0.2, 1.0, ret.size)))
    r_idx = idx[ret]
    # at most one return row per item and day (no accidental exact duplicates)
    _, first = np.unique(r_idx * n_days + r_day, return_index=True)
    r_idx, r_day, r_qty = r_idx[first], r_day[first], r_qty[first]

    key = np.concatenate([key, r_idx * n_days + r_day])
    qty = np.concatenate([qty, r_qty])
    order = np.argsort(key, kind="stable")
    key = key[order]
    return key // n_days, key % n_days, qty[order].astype(np.float64)


# --------------------------------------------------------------------------- suppliers
def _suppliers(
    rng: np.random.Generator, n_items: int
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_sup = int(np.clip(n_items // 60, 20, 40))
    cat = np.arange(n_sup) % len(CATEGORIES)  # every category has suppliers
    rng.shuffle(cat)
    lt_mean = np.round(np.exp(rng.uniform(np.log(5), np.log(60), n_sup)))
    lt_cv = rng.uniform(0.05, 0.5, n_sup)
    on_time = rng.uniform(0.6, 0.97, n_sup)
    names = [
        f"{_NAME_A[a]} {_NAME_B[b]} {_NAME_C[c]}"
        for a, b, c in zip(
            rng.integers(0, len(_NAME_A), n_sup).tolist(),
            rng.integers(0, len(_NAME_B), n_sup).tolist(),
            rng.integers(0, len(_NAME_C), n_sup).tolist(),
            strict=True,
        )
    ]
    suppliers = pl.DataFrame(
        {
            "supplier_id": [f"S{i:03d}" for i in range(1, n_sup + 1)],
            "name": names,
            "country": np.array(_COUNTRIES, dtype=object)[rng.integers(0, len(_COUNTRIES), n_sup)],
            "quoted_lead_time_days": lt_mean,
        },
        schema=TABLE_SCHEMAS["suppliers"],
    )
    return suppliers, cat, lt_mean, lt_cv, on_time


def _main_suppliers(
    rng: np.random.Generator, item_cat: np.ndarray, sup_cat: np.ndarray
) -> np.ndarray:
    """Main supplier of each item: a random supplier of the item's category."""
    n_cat = int(max(item_cat.max(initial=0), sup_cat.max(initial=0))) + 1
    out = np.empty(item_cat.size, dtype=np.int64)
    for c in range(n_cat):
        members = np.flatnonzero(sup_cat == c)
        if members.size == 0:
            members = np.arange(sup_cat.size)
        mask = item_cat == c
        out[mask] = rng.choice(members, size=int(mask.sum()))
    return out


# --------------------------------------------------------------------------- purchasing
def _purchase_orders(
    rng: np.random.Generator,
    item_ids: pl.Series,
    daily_mean: np.ndarray,
    unit_cost: np.ndarray,
    main_sup: np.ndarray,
    lt_mean: np.ndarray,
    lt_cv: np.ndarray,
    on_time: np.ndarray,
    start: np.datetime64,
    end: np.datetime64,
    supplier_ids: pl.Series,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = daily_mean.size
    span = int((end - start).astype(np.int64)) + 1 + _PRE_DAYS
    annual = daily_mean * 365.0
    # orders per year grow with the annual value (EOQ-like); items without demand get
    # an occasional initial stocking order.
    per_year = np.where(annual > 0, np.clip(np.sqrt(annual * unit_cost / 150.0), 0.5, 24.0), 0.15)
    n_po = rng.poisson(per_year * span / 365.0)
    po_item = np.repeat(np.arange(n), n_po)
    m = po_item.size
    order_day = rng.integers(0, span, m)  # offset from start - _PRE_DAYS
    order = np.lexsort((po_item, order_day))
    po_item, order_day = po_item[order], order_day[order]
    lot = np.where(annual[po_item] > 0, annual[po_item] / per_year[po_item], rng.integers(1, 6, m))
    qty = np.maximum(1.0, np.round(lot * np.exp(rng.normal(0.0, 0.2, m))))
    sup = np.where(rng.random(m) < 0.9, main_sup[po_item], rng.integers(0, lt_mean.size, m))
    quoted = lt_mean[sup]
    # actual lead time: on time (a little early or exactly) or late by a gamma delay
    punctual = rng.random(m) < on_time[sup]
    early = np.floor(quoted * rng.uniform(0.0, 0.15, m) * (rng.random(m) < 0.5))
    delay = np.ceil(rng.gamma(2.0, np.maximum(quoted * lt_cv[sup], 1.0), m))
    actual = np.where(punctual, quoted - early, quoted + delay).clip(1, None)

    origin = start - _PRE_DAYS
    order_date = origin + order_day
    promised = order_date + quoted.astype(np.int64)
    width = max(7, len(str(m)))
    po_ids = pl.Series("po_id", [f"PO{i:0{width}d}" for i in range(1, m + 1)], dtype=pl.String)
    sup_ids = supplier_ids.gather(sup)
    pos = pl.DataFrame(
        {
            "po_id": po_ids,
            "item_id": item_ids.gather(po_item),
            "supplier_id": sup_ids,
            "order_date": order_date,
            "quantity": qty,
            "promised_date": promised,
        },
        schema=TABLE_SCHEMAS["purchase_orders"],
    )

    # receipts: 10% in two parts; anything after end_date is not received yet (open)
    first_date = order_date + actual.astype(np.int64)
    partial = rng.random(m) < 0.10
    frac = np.where(partial, rng.uniform(0.3, 0.8, m), 1.0)
    q1 = np.where(partial, np.maximum(1.0, np.floor(qty * frac)), qty)
    q2 = qty - q1
    second = partial & (q2 > 0)
    second_date = first_date + rng.integers(3, 31, m)
    r_po = np.concatenate([np.arange(m), np.flatnonzero(second)])
    r_date = np.concatenate([first_date, second_date[second]])
    r_qty = np.concatenate([q1, q2[second]])
    booked = r_date <= end
    r_po, r_date, r_qty = r_po[booked], r_date[booked], r_qty[booked]
    order = np.lexsort((r_po, r_date))
    r_po, r_date, r_qty = r_po[order], r_date[order], r_qty[order]
    receipts = pl.DataFrame(
        {
            "po_id": po_ids.gather(r_po),
            "item_id": item_ids.gather(po_item[r_po]),
            "receipt_date": r_date,
            "quantity": r_qty,
        },
        schema=TABLE_SCHEMAS["receipts"],
    )
    return pos, receipts


def _stock(
    rng: np.random.Generator,
    item_ids: pl.Series,
    daily_mean: np.ndarray,
    lead_time: np.ndarray,
    end: np.datetime64,
) -> pl.DataFrame:
    n = daily_mean.size
    cover_days = lead_time * rng.uniform(0.3, 2.5, n) + rng.uniform(0, 60, n)
    on_hand = np.round(daily_mean * cover_days + rng.poisson(1.0, n) * (daily_mean < 0.05))
    stockout = rng.random(n) < 0.05
    on_hand = np.where(stockout, 0.0, on_hand)
    dead = daily_mean == 0
    on_hand = np.where(dead, rng.integers(0, 8, n), on_hand).astype(np.float64)
    return pl.DataFrame(
        {"item_id": item_ids, "on_hand": on_hand, "as_of": np.full(n, end)},
        schema=TABLE_SCHEMAS["stock"],
    )
