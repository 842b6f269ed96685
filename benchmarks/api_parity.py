"""Training speed through the CLI and through the Python API, agent by agent, in one run.

    python benchmarks/api_parity.py                          # every agent, 3 repeats, a busy second core
    python benchmarks/api_parity.py --agents feudal --repeats 1 --no-busy

Each run is a fresh process, as a user starts one: ``hrlkit train ALGO ...`` for the CLI, and for
the API a script that does what the README shows, ``hrlkit.Agent(env_id, seed=0).learn(N, ...)``
with nothing else set (no ``torch.set_num_threads``). Both use the library's default
hyperparameters and the same run settings (no evaluation, no TensorBoard, a checkpoint only at
the end), and both are timed the same way: SPS from the run's own ``progress.csv``
(``charts/SPS``, the training loop only), steps-weighted over the run. A third column runs the
API with torch's default thread count (``threads=torch.get_num_threads()``): what a Python user
got before the run's ``threads`` setting existed. Runs are interleaved (repeat r of every mode
of every agent, then r + 1; the CLI goes first in even repeats and the API in odd ones, since a
run right after another is measurably slower on this VM), and unless ``--no-busy`` a process
spins on another core all along: the situation of a user running two seeds on a 2-core machine.

Writes ``--out``/results.json and table.md; the goal is API / CLI >= 0.95 for every agent.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

# agent -> (class in hrlkit, env id, env steps per run). Library defaults for everything else.
AGENTS = {
    "option-critic": ("OptionCritic", "CartPole-v1", 30_000),
    "soft-option-critic": ("SoftOptionCritic", "Pendulum-v1", 2_000),
    "diayn": ("DIAYN", "hrlkit/PointNav-v0", 2_000),
    "diayn-manager": ("DIAYNManager", "hrlkit/PointNavGoal-v0", 5_000),
    "feudal": ("FeudalNetwork", "hrlkit/NineRoomsMaze-v0", 10_000),
}
MODES = ("cli", "api", "api, torch default threads")
SKILLS_STEPS = 1_500  # the small DIAYN run whose skills diayn-manager picks (not timed)


def _run_settings(steps: int) -> dict:
    return {"log_every": max(1, steps // 5)}


def _cli_command(algo: str, env_id: str, steps: int, run_dir: str, skills: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "hrlkit.cli", "train", algo, "--env", env_id, "--total-steps", str(steps),
           "--seed", "0", "--quiet", "--no-tensorboard", "--eval-every", "0", "--checkpoint-every", "0",
           "--log-every", str(_run_settings(steps)["log_every"]), "--run-dir", run_dir]
    return cmd + (["--skills", skills] if skills else [])


def _api_command(cls: str, env_id: str, steps: int, run_dir: str, skills: str | None, torch_default: bool) -> list[str]:
    kwargs = [f"{env_id!r}", "seed=0"]
    if skills:
        kwargs.append(f"skills={skills!r}")
    if torch_default:
        kwargs.append("threads=torch.get_num_threads()")
    learn = (f"{steps}, run_dir={run_dir!r}, progress=False, tensorboard=False, eval_every=None, "
             f"checkpoint_every=None, log_every={_run_settings(steps)['log_every']}")
    code = f"import torch\nimport hrlkit\nhrlkit.{cls}({', '.join(kwargs)}).learn({learn})\n"
    return [sys.executable, "-c", code]


def run_sps(run_dir: str) -> float:
    """Steps-weighted SPS of a finished run: total steps over the summed time of its log rows."""
    with open(os.path.join(run_dir, "progress.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("charts/SPS")]
    last, seconds = 0, 0.0
    for r in rows:
        step = int(float(r["global_step"]))
        seconds += (step - last) / float(r["charts/SPS"])
        last = step
    if not rows or seconds <= 0:
        raise RuntimeError(f"{run_dir}: no SPS rows in progress.csv")
    return last / seconds


def _train(cmd: list[str], run_dir: str) -> float:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    return run_sps(run_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every agent's step budget (smoke runs)")
    ap.add_argument("--no-busy", action="store_true", help="leave the other cores idle")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "api_parity"))
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats: expected an int >= 1, got {args.repeats}")
    if not 0 < args.scale <= 100:
        ap.error(f"--scale: expected a float in (0, 100], got {args.scale}")

    work = tempfile.mkdtemp(prefix="api_parity_")
    busy = None if args.no_busy else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    res: dict[str, dict[str, list[float]]] = {a: {m: [] for m in MODES} for a in args.agents}
    steps = {a: max(200, int(AGENTS[a][2] * args.scale)) for a in args.agents}
    try:
        skills = None
        if "diayn-manager" in args.agents:
            skills = os.path.join(work, "skills")
            _train(_cli_command("diayn", "hrlkit/PointNav-v0", max(300, int(SKILLS_STEPS * args.scale)), skills, None),
                   skills)
        n = 0
        for r in range(args.repeats):
            for algo in args.agents:
                cls, env_id, _ = AGENTS[algo]
                sk = skills if algo == "diayn-manager" else None
                order = MODES if r % 2 == 0 else (MODES[1], MODES[0], MODES[2])
                for mode in order:
                    n += 1
                    run_dir = os.path.join(work, f"run{n}")
                    cmd = (_cli_command(algo, env_id, steps[algo], run_dir, sk) if mode == "cli" else
                           _api_command(cls, env_id, steps[algo], run_dir, sk, mode != "api"))
                    res[algo][mode].append(_train(cmd, run_dir))
                    print(f"repeat {r} {algo:<20} {mode:<28} {res[algo][mode][-1]:8.0f} SPS", flush=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        shutil.rmtree(work, ignore_errors=True)

    import torch

    med = {a: {m: statistics.median(v) for m, v in modes.items()} for a, modes in res.items()}
    header = (f"{'a busy second core' if busy else 'idle cores'}, {os.cpu_count()} cores, torch {torch.__version__} "
              f"(default threads here: {torch.get_num_threads()}), {platform.machine()}, Python "
              f"{platform.python_version()}, {args.repeats} repeat(s); SPS = median over repeats")
    lines = [header, "",
             "| agent | env | steps | CLI SPS | API SPS | API / CLI | API, torch default threads | its / CLI |",
             "|---|---|---|---|---|---|---|---|"]
    for a in args.agents:
        m = med[a]
        lines.append(f"| {a} | {AGENTS[a][1]} | {steps[a]:,} | {m['cli']:,.0f} | {m['api']:,.0f} | "
                     f"{m['api'] / m['cli']:.2f} | {m[MODES[2]]:,.0f} | {m[MODES[2]] / m['cli']:.2f} |")
    print("\n".join(lines))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"header": header, "steps": steps, "busy": busy is not None, "runs": res, "median": med,
                   "ratio_api_cli": {a: med[a]["api"] / med[a]["cli"] for a in args.agents}}, f, indent=2)
    ok = all(med[a]["api"] / med[a]["cli"] >= 0.95 for a in args.agents)
    print("goal API / CLI >= 0.95 for every agent:", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
