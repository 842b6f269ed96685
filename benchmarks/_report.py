"""Shared by the benchmark scripts: write a markdown table to OUT/table.md and print it."""
from __future__ import annotations

import os


def write_table(out_dir: str, lines: list[str], name: str = "table.md") -> str:
    table = "\n".join(lines)
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(table + "\n")
    print(table)
    return table


def compare_sps(runners: dict, steps: int, repeats: int) -> tuple[dict, dict]:
    """Run each ``runners[name](steps, seed)`` ``repeats`` times, interleaved (so drifts in the
    machine's load hit every agent alike); returns the runs and their medians per name."""
    import statistics

    res: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(repeats):
        for name, run in runners.items():
            res[name].append(run(steps, r))
    return res, {k: statistics.median(v) for k, v in res.items()}


def sps_table(res: dict, med: dict) -> list[str]:
    """Markdown rows (median and every run per agent) and the first agent's ratio to the second."""
    names = list(res)
    lines = ["| agent | SPS (median) | runs |", "|---|---|---|"]
    lines += [f"| {k} | {med[k]:,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |" for k, v in res.items()]
    lines.append(f"ratio hrlkit / SB3: {med[names[0]] / med[names[1]]:.2f}")
    return lines
