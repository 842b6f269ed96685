"""A sweep's results: per configuration, the final score of each seed, their mean, IQM and a
bootstrap confidence interval of the IQM (Agarwal et al. 2021, rliable's estimators for one
task), as a markdown table; and one figure of the learning curves. Also the probability that
one configuration's run beats another's, with its bootstrap interval."""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def iqm(scores: Any) -> float:
    """The interquartile mean: the mean of the scores left after cutting int(n/4) from each end
    (scipy's ``trim_mean(x, 0.25)``, which rliable's IQM is)."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if x.size == 0:
        return math.nan
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def bootstrap_ci(scores: Any, statistic=iqm, *, reps: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of ``statistic`` over the runs (resampled with
    replacement ``reps`` times, seeded)."""
    return bootstrap_ci_of([scores], statistic, reps=reps, confidence=confidence, seed=seed)


def bootstrap_ci_of(samples: list[Any], statistic, *, reps: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of ``statistic(*samples)``, each sample's runs resampled
    with replacement on their own ``reps`` times, seeded (rliable's stratified bootstrap, one task)."""
    xs = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    if any(x.size == 0 for x in xs):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(*(x[rng.integers(0, x.size, x.size)] for x in xs)) for _ in range(reps)])
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1.0 - tail))


def probability_of_improvement(x: Any, y: Any) -> float:
    """P(X > Y) + P(X = Y) / 2 for a run X drawn from ``x`` and a run Y from ``y``: the share of
    the (x, y) pairs that x wins, ties counted half (the Mann-Whitney U statistic over n m;
    rliable's probability of improvement for one task). 0.5: neither is ahead."""
    a = np.asarray(x, dtype=np.float64).ravel()[:, None]
    b = np.asarray(y, dtype=np.float64).ravel()[None, :]
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(((a > b) + 0.5 * (a == b)).mean())


def summarize(trials: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """One row per configuration (in the order first seen): its label, the finished seeds' final
    ``metric`` values, mean, IQM and the IQM's 95% bootstrap CI, and the trials that failed or
    were stopped early."""
    from ..plotting import read_run

    rows: dict[str, dict[str, Any]] = {}
    for t in trials:
        row = rows.setdefault(t["label"], {"label": t["label"], "seeds": [], "finals": [], "failed": [],
                                           "stopped": []})
        status = t.get("status")
        if status == "done":
            _, _, values = read_run(t["run_dir"], metric)
            if len(values):
                row["seeds"].append(t["seed"])
                row["finals"].append(float(values[-1]))
        elif status == "stopped":
            row["stopped"].append(t["seed"])
        else:
            row["failed"].append(t["seed"])
    for row in rows.values():
        row["mean"] = float(np.mean(row["finals"])) if row["finals"] else math.nan
        row["iqm"] = iqm(row["finals"])
        row["ci"] = bootstrap_ci(row["finals"])
    return list(rows.values())


def table(rows: list[dict[str, Any]], metric: str) -> list[str]:
    lines = [f"final {metric} per configuration (95% bootstrap CI of the IQM over seeds)", "",
             "| configuration | seeds | mean | IQM | 95% CI | per seed | failed | stopped early |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per_seed = ", ".join(f"{s}: {v:.1f}" for s, v in zip(r["seeds"], r["finals"]))
        lines.append(f"| {r['label']} | {len(r['finals'])} | {r['mean']:.1f} | {r['iqm']:.1f} | "
                     f"[{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] | {per_seed} | {_seeds(r['failed'])} | "
                     f"{_seeds(r['stopped'])} |")
    return lines


def _seeds(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds)) or "-"


def curves_figure(trials: list[dict[str, Any]], metric: str, out: str, title: str) -> str | None:
    """Mean ± std over the seeds of each configuration (its finished runs that logged ``metric``;
    runs stopped early by ASHA would cut the common grid short); None when no run did."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import aggregate, read_run

    groups: dict[str, list] = {}
    for t in trials:
        if t.get("status") == "done" and os.path.isfile(os.path.join(t["run_dir"], "progress.csv")):
            try:
                _, s, v = read_run(t["run_dir"], metric)
            except ValueError:  # the metric was never logged
                continue
            if len(s):
                groups.setdefault(t["label"], []).append((s, v))
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, curves in groups.items():
        grid, mean, std = aggregate(curves)
        line = ax.plot(grid, mean, label=f"{label} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")[0]
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
