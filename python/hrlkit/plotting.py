"""Learning curves from run directories: mean and spread over seeds, one line per (algo, env)."""
from __future__ import annotations

import csv
import json
import os
from collections import defaultdict

import numpy as np


def read_run(run_dir: str, metric: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """(config.json, steps, values) of one run's ``metric`` from its progress.csv."""
    cfg_path, csv_path = os.path.join(run_dir, "config.json"), os.path.join(run_dir, "progress.csv")
    for p in (cfg_path, csv_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"run_dirs: {run_dir!r} is not an hrlkit run directory (missing {os.path.basename(p)})")
    with open(cfg_path) as f:
        cfg = json.load(f)
    steps, values = [], []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if c != "global_step"]
        if metric not in columns:
            raise ValueError(f"--metric: {metric!r} is not a column of {csv_path!r}; "
                             f"its columns: {', '.join(columns) or '(none: nothing logged yet)'}")
        for row in reader:
            v = row.get(metric)
            if v not in (None, ""):
                steps.append(float(row["global_step"]))
                values.append(float(v))
    return cfg, np.asarray(steps), np.asarray(values)


def aggregate(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolate each (steps, values) curve onto a common grid up to the shortest run's last
    step; returns (grid, mean, std)."""
    curves = [(s, v) for s, v in curves if len(s)]
    if not curves:
        raise ValueError("no data points to plot")
    end = min(s[-1] for s, _ in curves)
    start = max(s[0] for s, _ in curves)
    grid = np.linspace(start, end, points) if end > start else np.array([end])
    ys = np.stack([np.interp(grid, s, v) for s, v in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0)


def plot_runs(run_dirs: list[str], out: str, metric: str = "eval/mean_return", title: str | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], list] = defaultdict(list)
    for rd in run_dirs:
        cfg, s, v = read_run(rd, metric)
        groups[(cfg["algo"], cfg["env_id"])].append((s, v))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (algo, env), curves in sorted(groups.items()):
        grid, mean, std = aggregate(curves)
        line = ax.plot(grid, mean, label=f"{algo} on {env} ({len(curves)} run{'s' if len(curves) > 1 else ''})")[0]
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        fig.savefig(out, dpi=120)
    except OSError as exc:
        raise ValueError(f"--out: cannot write {out!r} ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return out
