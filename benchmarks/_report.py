"""Shared by the benchmark scripts: write a markdown table to OUT/table.md and print it."""
from __future__ import annotations

import os


def write_table(out_dir: str, lines: list[str], name: str = "table.md") -> str:
    table = "\n".join(lines)
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(table + "\n")
    print(table)
    return table
