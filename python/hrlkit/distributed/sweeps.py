"""Sweeps: seeds x a grid of hyperparameters, each trial an ordinary hrlkit run directory, run as
Ray Tune trials on a local Ray or a running cluster.

    hrlkit sweep soft-option-critic --env Pendulum-v1 --seeds 0-4 --grid num_options=2,4 \\
        --grid learning_rate=3e-4,1e-3 --total-steps 50000 [--address HOST:PORT] [--asha]

    hrlkit.sweep("soft-option-critic", "Pendulum-v1", seeds=range(5),
                 grid={"num_options": [2, 4]}, total_steps=50_000)

Why Ray Tune trials, not bare Ray tasks: Tune already does what a sweep needs beyond "run these
functions": a CPU/GPU request per trial and scheduling them onto the cluster as resources free up,
one failed trial reported while the others go on, a status table, and ASHA early stopping, which
needs a scheduler that sees every trial's intermediate results. What Tune does not own is the
record of a trial: each trial is the trainer's own run directory (config.json, progress.csv,
TensorBoard events, checkpoints) under ``OUT/``, plus a ``trial.json`` saying how it ended. That
record is what resuming reads: a rerun of the same sweep skips the trials that finished (or that
ASHA stopped), continues interrupted ones from their latest checkpoint, and runs the rest (failed
ones included); it needs no Tune experiment state. On a multi-machine cluster ``OUT`` must be on
storage every node sees (NFS or the like), and hrlkit installed on every node.

Everything is validated before any trial starts: the algorithm, the env id and wrappers, every
grid combination's configuration (an unknown key is an error naming ``--grid``), the seeds, the
resources, and the cluster's address.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import time
import traceback
from typing import Any, Iterable, Mapping

from ..runtime.config import ConfigError, build_config, parse_overrides
from .cluster import INSTALL_HINT, cluster_cpus, connect, require_ray

TRIAL_RECORD = "trial.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


# ---- parsing --------------------------------------------------------------------------------------
def parse_seeds(text: Any) -> list[int]:
    """``"0-4"``, ``"0,2,7"``, ``"3"``, an int or an iterable of ints -> the seeds, in order."""
    if isinstance(text, (int,)) and not isinstance(text, bool):
        items: list[Any] = [text]
    elif isinstance(text, str):
        items = []
        for part in (p.strip() for p in text.split(",")):
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            if m and int(m.group(1)) <= int(m.group(2)):
                items.extend(range(int(m.group(1)), int(m.group(2)) + 1))
            elif part.isdigit():
                items.append(int(part))
            else:
                raise ConfigError(f"--seeds: expected a range such as 0-4 or a list such as 0,1,2 of ints >= 0, "
                                  f"got {text!r}")
    else:
        items = list(text)
    if not items or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in items) \
            or len(set(items)) != len(items):
        raise ConfigError(f"--seeds: expected distinct ints >= 0 (e.g. 0-4), got {text!r}")
    return items


def parse_grid(items: Iterable[str] | Mapping[str, Iterable[Any]] | None) -> dict[str, list[Any]]:
    """``["num_options=2,4", "hidden_sizes=[64,64],[256,256]"]`` (commas inside brackets belong to
    a value) or a mapping -> ``{key: [values]}``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        grid = {}
        for k, v in items.items():
            values = list(v) if isinstance(v, (list, tuple, range)) else [v]
            if not values:
                raise ConfigError(f"--grid: expected at least one value for {k!r}, got {v!r}")
            grid[str(k)] = values
        return grid
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, eq, text = str(item).partition("=")
        key = key.strip()
        values = _split_top_level(text)
        if not eq or not key.isidentifier() or not values:
            raise ConfigError(f"--grid: expected KEY=V1,V2,... (e.g. num_options=2,4), got {item!r}")
        if key in grid:
            raise ConfigError(f"--grid: {key!r} given twice (put all its values in one --grid {key}=V1,V2)")
        grid[key] = values
    return grid


def _split_top_level(text: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            if text[start:i].strip():
                out.append(text[start:i].strip())
            start = i + 1
    return out


# ---- the plan ---------------------------------------------------------------------------------------
def plan(algo: str, env: str, *, seeds: Any, grid: Any, config: Mapping[str, Any] | None, total_steps: int,
         out: str, wrappers: list | None = None, env_module: list[str] | None = None) -> list[dict[str, Any]]:
    """Every trial of the sweep (``name``, ``label``, ``seed``, ``config``, ``run_dir``), after
    checking every input; a ConfigError names the first bad one."""
    from ..agents import ALGORITHMS
    from ..runtime.envs import EnvMaker

    if algo not in ALGORITHMS:
        raise ConfigError(f"ALGO: expected one of {', '.join(ALGORITHMS)}, got {algo!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"--total-steps: expected an int >= 1, got {total_steps!r}")
    if not isinstance(env, str):
        raise ConfigError(f"--env: a sweep rebuilds its env in every trial, so it takes an env id, got "
                          f"{type(env).__name__}")
    EnvMaker(env, wrappers=wrappers, env_module=env_module)  # the id, the wrappers and the modules resolve
    cls = ALGORITHMS[algo]
    seeds = parse_seeds(seeds)
    grid = parse_grid(grid)
    base = dict(config or {})
    names = [f.name for f in dataclasses.fields(cls.Config)]
    for key, values in grid.items():
        if key not in names:
            raise ConfigError(f"--grid: {key!r} is not a hyperparameter of {algo} (expected one of: "
                              f"{', '.join(names)}), got --grid {key}={','.join(map(str, values))}")
        if key in base:
            raise ConfigError(f"--grid: {key!r} is also fixed by --set/--config; give it in one place")
    try:
        build_config(cls.Config, base)
    except ConfigError as exc:
        raise ConfigError(f"--set/--config: {exc}") from None
    if base.get("skills"):  # diayn-manager: trials may run in another working directory
        base["skills"] = os.path.abspath(str(base["skills"]))
    keys = list(grid)
    trials = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        label = ",".join(f"{k}={v}" for k, v in values.items()) or "default"
        try:
            build_config(cls.Config, base, values)
        except ConfigError as exc:
            raise ConfigError(f"--grid {label}: {exc}") from None
        for seed in seeds:
            name = f"{_SAFE.sub('_', label)}__seed{seed}"
            trials.append({"name": name, "label": label, "seed": seed, "config": {**base, **values},
                           "run_dir": os.path.join(os.path.abspath(out), name)})
    return trials


# ---- one trial (runs in a Ray Tune worker) ---------------------------------------------------------------
def run_trial(tune_config: dict[str, Any]) -> None:
    """Train one trial into its run directory (continuing it from its latest checkpoint when an
    earlier sweep was interrupted), reporting each log row to Tune, and record how it ended in
    ``trial.json``."""
    from ray import tune

    from ..agents import ALGORITHMS
    from ..agents.base import load_agent
    from ..runtime.rundir import has_checkpoint

    t, s = tune_config["trial"], tune_config["settings"]
    cls = ALGORITHMS[s["algo"]]
    run_dir = t["run_dir"]
    latest = os.path.join(run_dir, "checkpoints", "latest.pt")
    agent = None
    try:
        if has_checkpoint(run_dir) and os.path.isfile(latest):
            agent = load_agent(latest, cls, device=s["device"], threads=s["threads"])
        else:
            agent = cls(s["env"], seed=t["seed"], device=s["device"], config=t["config"], wrappers=s["wrappers"],
                        env_module=s["env_module"], threads=s["threads"])
        score: dict[str, float] = {}

        def report(agent, scalars: dict[str, float]) -> None:
            for name in (s["metric"], "charts/episodic_return"):
                if name in scalars:
                    score.setdefault(name, scalars[name])
                    score[name] = scalars[name]
            value = score.get(s["metric"], score.get("charts/episodic_return"))
            if value is not None:
                tune.report({"global_step": agent.global_step, "score": value})

        agent.learn(s["total_steps"], run_dir=run_dir, log_every=s["log_every"], eval_every=s["eval_every"],
                    eval_episodes=s["eval_episodes"], checkpoint_every=s["checkpoint_every"], progress=False,
                    callback=report)
        _record(run_dir, {"status": "done", "global_step": agent.global_step})
    except SystemExit:  # Tune's scheduler (ASHA) stopped this trial at its last report
        _record(run_dir, {"status": "stopped", "global_step": None if agent is None else agent.global_step})
        raise
    except BaseException as exc:
        _record(run_dir, {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(limit=8)})
        raise


def _record(run_dir: str, data: dict[str, Any]) -> None:
    os.makedirs(run_dir, exist_ok=True)
    tmp = os.path.join(run_dir, TRIAL_RECORD + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, os.path.join(run_dir, TRIAL_RECORD))


def read_record(run_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(run_dir, TRIAL_RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# ---- the sweep -----------------------------------------------------------------------------------------
def sweep(algo: str, env: str, *, seeds: Any = (0,), grid: Any = None, config: Mapping[str, Any] | None = None,
          total_steps: int = 100_000, out: str | None = None, address: str | None = None,
          cpus_per_trial: float = 1, gpus_per_trial: float = 0, device: str = "cpu", metric: str | None = None,
          log_every: int = 10_000, eval_every: int | None = 25_000, eval_episodes: int = 10,
          checkpoint_every: int | None = 50_000, wrappers: list | None = None, env_module: list[str] | None = None,
          asha: Mapping[str, Any] | bool | None = None, verbose: int = 1) -> dict[str, Any]:
    """Run every (configuration, seed) trial of ``grid`` x ``seeds`` as a Ray Tune trial, each an
    ordinary run directory under ``out`` (default ``sweeps/{env}__{algo}``); returns the summary
    (``rows``: per configuration the seeds' final ``metric``, mean, IQM, 95% bootstrap CI;
    ``table``, ``figure``, ``trials``) also written to ``out/results.json``, ``table.md`` and
    ``curves.png``.

    ``address``: a running Ray cluster (host:port, ``ray://...``, ``auto``); default a local Ray
    started for the sweep (or the one this process already runs). ``cpus_per_trial`` /
    ``gpus_per_trial``: Tune's resource request per trial (the trial's torch threads follow its
    CPUs; ``device="cuda"`` needs a GPU per trial). ``metric`` (default ``eval/mean_return``, or
    ``charts/episodic_return`` without evaluations): what the table and ASHA read. ``asha``: True
    or ``{"grace_period": steps, "reduction_factor": 3}`` stops the worse trials early (ASHA over
    ``global_step``). A rerun with the same ``out`` skips finished trials and continues
    interrupted ones.
    """
    require_ray("sweep")
    try:
        from ray import tune
    except ImportError:
        raise ConfigError(f"sweep: needs Ray Tune (ray[tune]); {INSTALL_HINT}") from None
    from .report import curves_figure, summarize, table

    out = out or os.path.join("sweeps", f"{str(env).replace('/', '-')}__{algo}")
    trials = plan(algo, env, seeds=seeds, grid=grid, config=config, total_steps=total_steps, out=out,
                  wrappers=wrappers, env_module=env_module)
    metric = metric or ("eval/mean_return" if eval_every else "charts/episodic_return")
    for name, value in (("--cpus-per-trial", cpus_per_trial), ("--gpus-per-trial", gpus_per_trial)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name}: expected a number >= 0, got {value!r}")
    if cpus_per_trial <= 0:
        raise ConfigError(f"--cpus-per-trial: expected a number > 0, got {cpus_per_trial!r}")
    if str(device).startswith("cuda") and gpus_per_trial <= 0:
        raise ConfigError(f"--device: {device!r} needs --gpus-per-trial > 0 (Tune gives a trial only the GPUs it "
                          f"asks for), got --gpus-per-trial {gpus_per_trial}")
    scheduler = _asha(asha, total_steps)
    settings = {"algo": algo, "env": env, "total_steps": int(total_steps), "wrappers": list(wrappers or []),
                "env_module": list(env_module or []), "device": device, "threads": max(1, int(cpus_per_trial)),
                "metric": metric, "log_every": log_every, "eval_every": eval_every, "eval_episodes": eval_episodes,
                "checkpoint_every": checkpoint_every}
    record = _same_sweep(out, settings, trials)
    skip = ("done", "stopped") if scheduler is not None else ("done",)
    todo = [t for t in trials if read_record(t["run_dir"]).get("status") not in skip]
    ray = connect(address)  # an unreachable --address fails here, before any trial starts
    if cpus_per_trial > cluster_cpus(ray):
        raise ConfigError(f"--cpus-per-trial: {cpus_per_trial:g} asked, the Ray cluster has {cluster_cpus(ray):g} CPUs")
    if gpus_per_trial > ray.cluster_resources().get("GPU", 0.0):
        raise ConfigError(f"--gpus-per-trial: {gpus_per_trial:g} asked, the Ray cluster has "
                          f"{ray.cluster_resources().get('GPU', 0.0):g} GPUs")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(record, f, indent=2)
    if verbose:
        print(f"hrlkit sweep: {len(trials)} trials ({len(trials) - len(todo)} already finished) in {out}")
    if todo:
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the trials write their own logs
        trainable = tune.with_resources(run_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(todo), "settings": settings},
            tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1),
            run_config=tune.RunConfig(name=f"tune_{int(time.time())}",
                                      storage_path=os.path.join(os.path.abspath(out), "_tune"),
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                                      verbose=verbose),
        )
        grid_result = tuner.fit()
        for result in grid_result:  # a trial whose process died wrote no record: Tune's error is the record
            t = result.config["trial"]
            if result.error is not None and read_record(t["run_dir"]).get("status") not in ("error", "stopped"):
                _record(t["run_dir"], {"status": "error", "error": f"{type(result.error).__name__}: {result.error}"})
    for t in trials:
        record = read_record(t["run_dir"])
        t["status"] = record.get("status", "not run")
        if "error" in record:
            t["error"] = record["error"]
    rows = summarize(trials, metric)
    lines = table(rows, metric)
    failed = [t for t in trials if t["status"] not in ("done", "stopped")]
    lines += ["", f"{algo} on {env}, {total_steps:,} steps per trial; run directories in {out}"]
    lines += [f"failed: {t['name']}: {t.get('error', t['status'])}" for t in failed]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    figure = curves_figure(trials, metric, os.path.join(out, "curves.png"),
                           f"{algo} on {env}: {metric}, mean ± std over seeds")
    summary = {"algo": algo, "env": env, "metric": metric, "rows": rows, "table": "\n".join(lines),
               "figure": figure, "trials": trials, "failed": [t["name"] for t in failed]}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    if verbose:
        print(summary["table"])
    return summary


def _asha(asha: Any, total_steps: int):
    if asha is None or asha is False:
        return None
    from ray.tune.schedulers import ASHAScheduler

    opts = {} if asha is True else dict(asha)
    unknown = set(opts) - {"grace_period", "reduction_factor"}
    if unknown:
        raise ConfigError(f"asha: unknown keys {sorted(unknown)}; expected grace_period, reduction_factor")
    grace = opts.get("grace_period", max(1, total_steps // 10))
    factor = opts.get("reduction_factor", 3)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 1 <= grace <= total_steps:
        raise ConfigError(f"--asha-grace: expected env steps in [1, {total_steps}], got {grace!r}")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
        raise ConfigError(f"--asha-reduction: expected a number > 1, got {factor!r}")
    return ASHAScheduler(time_attr="global_step", metric="score", mode="max", max_t=total_steps,
                         grace_period=grace, reduction_factor=factor)


def _same_sweep(out: str, settings: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweep's record for ``out/sweep.json``; a directory holding a sweep of another
    algorithm, env, length, wrappers or env modules is refused (its trials would not be
    comparable)."""
    path = os.path.join(out, "sweep.json")
    fixed = {k: settings[k] for k in ("algo", "env", "total_steps", "wrappers", "env_module")}
    if os.path.isfile(path):
        with open(path) as f:
            before = json.load(f)
        changed = [k for k in fixed if before.get(k) != fixed[k]]
        if changed:
            raise ConfigError(f"--out: {out!r} holds another sweep ({', '.join(f'{k} {before.get(k)!r}' for k in changed)}"
                              f"; this one has {', '.join(f'{k} {fixed[k]!r}' for k in changed)}); pass another --out")
    return {**fixed, "trials": [t["name"] for t in trials]}


# ---- the command line -------------------------------------------------------------------------------------
def add_parser(sub) -> None:
    """``hrlkit sweep``'s options."""
    import argparse

    from ..agents import ALGORITHMS

    s = sub.add_parser("sweep", help="seeds x a hyperparameter grid as Ray Tune trials (pip install \"hrlkit[ray]\")",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=(__doc__ or "").split("\n\n")[1])
    s.add_argument("algo", metavar="ALGO", choices=list(ALGORITHMS), help=f"one of {', '.join(ALGORITHMS)}")
    s.add_argument("--env", required=True, help="environment id")
    s.add_argument("--seeds", default="0", help="seeds: a range 0-4 or a list 0,1,2 (default 0)")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a hyperparameter and its values (repeatable: the grid is the product)")
    s.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="hyperparameters fixed for every trial")
    s.add_argument("--config", help="YAML or TOML file of fixed hyperparameters")
    s.add_argument("--wrap", action="append", default=[], metavar="NAME[:key=value,...]", help="as hrlkit train's")
    s.add_argument("--env-module", action="append", default=[], metavar="MODULE", help="as hrlkit train's")
    s.add_argument("--num-envs", type=int, default=None)
    s.add_argument("--total-steps", type=int, default=100_000, help="env steps per trial")
    s.add_argument("--out", help="the sweep's directory (default sweeps/{env}__{algo}); rerun to resume")
    s.add_argument("--address", help="a running Ray cluster (host:port, ray://host:port or auto); default: a local Ray")
    s.add_argument("--cpus-per-trial", type=float, default=1.0)
    s.add_argument("--gpus-per-trial", type=float, default=0.0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--metric", help="the progress.csv column scored (default eval/mean_return)")
    s.add_argument("--log-every", type=int, default=10_000)
    s.add_argument("--eval-every", type=int, default=25_000, help="0: no evaluations (the score is then "
                                                                   "charts/episodic_return)")
    s.add_argument("--eval-episodes", type=int, default=10)
    s.add_argument("--checkpoint-every", type=int, default=50_000, help="0: final only")
    s.add_argument("--asha", action="store_true", help="stop the worse trials early (ASHA over env steps)")
    s.add_argument("--asha-grace", type=int, default=None, help="--asha: env steps before a trial can be stopped "
                                                                "(default total/10)")
    s.add_argument("--asha-reduction", type=float, default=3.0, help="--asha: keep the best 1/N at each rung")
    s.add_argument("--quiet", action="store_true")


def cmd_sweep(args) -> int:
    from ..runtime.config import load_config_file

    config: dict[str, Any] = {}
    wrappers, modules = list(args.wrap), list(args.env_module)
    if args.config:
        config.update(load_config_file(args.config))
        wrappers = list(config.pop("wrappers", None) or []) + wrappers
        extra = config.pop("env_module", None) or []
        modules = ([extra] if isinstance(extra, str) else list(extra)) + modules
    config.update(parse_overrides(args.set))
    if args.num_envs is not None:
        config["num_envs"] = args.num_envs
    asha = None
    if args.asha:
        asha = {"reduction_factor": args.asha_reduction}
        if args.asha_grace is not None:
            asha["grace_period"] = args.asha_grace
    elif args.asha_grace is not None:
        raise ConfigError("--asha-grace: only with --asha")
    summary = sweep(args.algo, args.env, seeds=args.seeds, grid=args.grid, config=config,
                    total_steps=args.total_steps, out=args.out, address=args.address,
                    cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, device=args.device,
                    metric=args.metric, log_every=args.log_every, eval_every=args.eval_every or None,
                    eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every or None,
                    wrappers=wrappers, env_module=modules, asha=asha, verbose=0 if args.quiet else 1)
    if args.quiet:
        print(summary["table"])
    return 1 if summary["failed"] else 0
