"""The ``hrlkit`` command: train, eval, plot, skills, list."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .runtime.config import ConfigError, describe_fields, load_config_file, parse_overrides


def _algorithms():
    from .agents import ALGORITHMS

    return ALGORITHMS


def _hyperparameter_help(name: str, cls) -> str:
    lines = [f"hyperparameters of {name} (--set key=value ..., repeatable, or keys of --config FILE):"]
    for key, accepts, default, help_text in describe_fields(cls.Config):
        lines.append(f"  {key:<28} default {default!r:<12} {help_text}; {accepts}")
    return "\n".join(lines)


def _train_options() -> argparse.ArgumentParser:
    """The options of ``hrlkit train ALGO``, shared by every algorithm's sub-command."""
    t = argparse.ArgumentParser(add_help=False)
    t.add_argument("--env", help="gymnasium environment id (e.g. CartPole-v1, hrlkit/FourRooms-v0, mypkg.envs:MyEnv-v0)")
    t.add_argument("--env-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE before making the env (it registers your ids); recorded, re-imported by "
                        "eval, skills and --resume (repeatable)")
    t.add_argument("--wrap", action="append", default=[], metavar="NAME[:key=value,...]",
                   help="a gymnasium wrapper around each env, applied in order (repeatable): a gymnasium.wrappers "
                        "name or package.module:Class, e.g. --wrap GrayscaleObservation --wrap "
                        "ResizeObservation:shape=[64,64]; a config file's 'wrappers:' list does the same")
    t.add_argument("--total-steps", type=int, default=None, help="environment steps to train for (default 100000)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--num-envs", type=int, default=None, help="parallel environments (overrides num_envs)")
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    t.add_argument("--config", help="YAML or TOML file of hyperparameters")
    t.add_argument("--preset", metavar="NAME",
                   help="a named set-up: env, wrappers and this algorithm's hyperparameters (carracing: CarRacing-v3 "
                        "pixels, action repeat 4, grayscale 64x64, async envs); --config, --set and --wrap add to it")
    t.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="hyperparameter overrides (repeatable: --set a=1 --set b=2 keeps both)")
    t.add_argument("--async-envs", action="store_true", help="one process per environment")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1, or the resumed run's: the networks are small and more threads "
                        "only contend; pixel encoders on large batches may gain from more when a core is free)")
    t.add_argument("--run-dir", help="where to write the run (default runs/{env}__{algo}__{seed}__{time})")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    t.add_argument("--trust-checkpoint", action="store_true",
                   help="--resume: also unpickle the saved environments, for an exact resume (only for runs you "
                        "trust: unpickling can run code); without it the run continues with new, seeded episodes")
    t.add_argument("--resume-fallback", action="store_true",
                   help="--resume: if latest.pt is corrupted, continue from the newest intact step_N.pt")
    t.add_argument("--log-every", type=int, default=10_000, help="env steps between log rows")
    t.add_argument("--eval-every", type=int, default=25_000, help="env steps between greedy evaluations (0: none)")
    t.add_argument("--eval-episodes", type=int, default=10)
    t.add_argument("--checkpoint-every", type=int, default=50_000, help="env steps between checkpoints (0: final only)")
    t.add_argument("--video", action="store_true", help="record an MP4 of the first episode of each evaluation")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-tensorboard", action="store_true", help="CSV only")
    t.add_argument("--track", action="store_true",
                   help="also log the scalars and hyperparameters to Weights & Biases (needs wandb; "
                        "WANDB_MODE=offline to log locally and `wandb sync` later)")
    t.add_argument("--track-project", default=None, help="--track: the wandb project (default hrlkit)")
    t.add_argument("--track-entity", default=None, help="--track: the wandb entity (default: your wandb default)")
    t.add_argument("--collectors", type=int, default=0, metavar="N",
                   help="off-policy agents: N Ray actors collect with their own envs while this process learns "
                        "(pip install \"hrlkit[ray]\"; RAY_ADDRESS=host:port joins a running cluster); 0: in-process")
    t.add_argument("--sync-every", type=int, default=20, metavar="K",
                   help="--collectors: broadcast the acting networks to the collectors every K updates")
    return t


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="hrlkit", description="Hierarchical RL: train, evaluate and plot agents.")
    p.add_argument("--version", action="version", version=f"hrlkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent (hrlkit train ALGO --help: its options and hyperparameters)")
    algos = train.add_subparsers(dest="algo", required=True, metavar="ALGO",
                                 help=f"algorithm: one of {', '.join(_algorithms())}")
    common = _train_options()
    for name, cls in _algorithms().items():
        a = algos.add_parser(name, parents=[common], help=(cls.__doc__ or "").strip().splitlines()[0],
                             epilog=_hyperparameter_help(name, cls), formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "diayn-manager":
            a.add_argument("--skills", metavar="RUN_DIR", help="the DIAYN run (or checkpoint) whose skills it picks")

    e = sub.add_parser("eval", help="evaluate a trained run greedily")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--checkpoint", help="checkpoint file (default RUN_DIR/checkpoints/latest.pt); never unpickled")
    e.add_argument("--seed", type=int, default=None, help="first evaluation seed")
    e.add_argument("--env", help="evaluate on this env id instead of the run's own (needed when the run's env was "
                                 "handed over as an object)")
    e.add_argument("--video", action="store_true", help="write an MP4 of the first episode to RUN_DIR/videos")

    pl = sub.add_parser("plot", help="learning curves (mean ± std over seeds) to PNG")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", default="curves.png")
    pl.add_argument("--metric", default="eval/mean_return", help="a column of progress.csv")

    sk = sub.add_parser("skills", help="roll out and draw every skill of a DIAYN run")
    sk.add_argument("run_dir")
    sk.add_argument("--out", help="PNG path (default RUN_DIR/skills.png)")
    sk.add_argument("--episodes", type=int, default=1, help="episodes per skill")
    sk.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mean")
    sk.add_argument("--seed", type=int, default=0, help="seed of episode 0 of every skill")
    sk.add_argument("--video", action="store_true", help="an MP4 per skill in RUN_DIR/skills")
    sk.add_argument("--checkpoint", help="checkpoint file (default RUN_DIR/checkpoints/latest.pt)")
    sk.add_argument("--env", help="roll the skills out on this env id instead of the run's own")

    cv = sub.add_parser("convert-checkpoint",
                        help="rewrite a checkpoint of an older hrlkit (format 1) in the safe format; format 1 loads "
                             "by unpickling, which can run code: convert only files you trust")
    cv.add_argument("old_path")
    cv.add_argument("new_path")

    sub.add_parser("list", help="algorithms and registered environments")
    from .distributed.sweeps import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    return p


def cmd_train(args) -> int:
    from .agents.base import load_agent
    from .runtime.threads import DEFAULT_THREADS
    from .runtime.trainer import default_run_dir

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads: expected an int >= 1, got {args.threads}")
    if args.total_steps is not None and args.total_steps < 1:
        raise ConfigError(f"--total-steps: expected an int >= 1, got {args.total_steps}")
    if not args.track and (args.track_project or args.track_entity):
        raise ConfigError("--track-project/--track-entity: only with --track")
    extra = {"track": _track_options(args)} if args.track else {}  # Logger(track=...): the trainer passes it on
    if args.collectors:  # learn()'s defaults stay untouched without them
        extra.update(collectors=args.collectors, sync_every=args.sync_every)
    cls = _algorithms()[args.algo]
    overrides, wrappers, env_modules, env_kwargs, async_envs = {}, [], list(args.env_module), None, args.async_envs
    if args.preset:
        from .presets import preset

        if args.resume:
            raise ConfigError("--preset: a resumed run keeps its own env and hyperparameters; drop --preset")
        chosen = preset(args.preset, args.algo)
        if args.env is not None and args.env != chosen["env"]:
            raise ConfigError(f"--env: the preset {args.preset!r} is for {chosen['env']}, got {args.env!r}; drop --env "
                              f"or --preset")
        args.env, env_kwargs, async_envs = chosen["env"], chosen["env_kwargs"], async_envs or chosen["async_envs"]
        overrides.update(chosen["config"])
        wrappers = list(chosen["wrappers"])
    if args.config:
        overrides.update(load_config_file(args.config))
        file_wrappers = overrides.pop("wrappers", None) or []  # the env's, not hyperparameters
        if not isinstance(file_wrappers, list):
            raise ConfigError(f"--config: 'wrappers' must be a list, got {file_wrappers!r}")
        wrappers = wrappers + file_wrappers
        modules = overrides.pop("env_module", None) or []
        env_modules = ([modules] if isinstance(modules, str) else list(modules)) + env_modules
    wrappers = wrappers + list(args.wrap)
    overrides.update(parse_overrides(args.set))
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    if getattr(args, "skills", None) is not None:
        overrides["skills"] = args.skills
    if args.resume:
        if overrides or wrappers or env_modules:
            raise ConfigError("--resume: hyperparameters and the env come from the checkpoint; drop --set/--config/"
                              "--num-envs/--wrap/--env-module")
        path = _resume_checkpoint(args.resume, args.resume_fallback)
        agent = load_agent(path, cls, device=args.device, threads=args.threads, trust_pickle=args.trust_checkpoint)
        with open(os.path.join(args.resume, "config.json")) as f:
            total = args.total_steps if args.total_steps is not None else json.load(f)["total_steps"]
        run_dir = args.resume
    else:
        if not args.env:
            raise ConfigError("--env: required (e.g. --env CartPole-v1); `hrlkit list` names the registered ids")
        agent = cls(args.env, seed=args.seed, device=args.device, async_envs=async_envs, config=overrides,
                    wrappers=wrappers, env_module=env_modules, env_kwargs=env_kwargs,
                    threads=DEFAULT_THREADS if args.threads is None else args.threads)
        total = args.total_steps if args.total_steps is not None else 100_000
        run_dir = args.run_dir or default_run_dir(agent)
    agent.learn(
        total,
        run_dir=run_dir,
        log_every=args.log_every,
        eval_every=args.eval_every or None,
        eval_episodes=args.eval_episodes,
        checkpoint_every=args.checkpoint_every or None,
        progress=not args.quiet,
        tensorboard=not args.no_tensorboard,
        video=args.video,
        **extra,
    )
    last = getattr(agent, "last_evaluation", None)
    if last is not None:
        print(f"greedy evaluation at step {last['step']:,}: mean return {last['mean_return']:.1f} "
              f"+/- {last['std_return']:.1f} over {last['episodes']} episodes")
    print(f"run saved in {agent.run_dir}")
    return 0


def _track_options(args) -> dict:
    """``track`` for the run's Logger from --track-project/--track-entity; fails before anything is
    built when wandb is not installed."""
    from .runtime.tracking import require_wandb

    require_wandb("--track")
    return {"project": args.track_project or "hrlkit", "entity": args.track_entity}


def _resume_checkpoint(run_dir: str, fallback: bool) -> str:
    """The checkpoint ``--resume RUN_DIR`` continues from: latest.pt, or with ``fallback`` the
    newest intact one when latest.pt is corrupted."""
    import re

    from .runtime import checkpoint

    ckpt_dir = os.path.join(run_dir, "checkpoints")
    latest = os.path.join(ckpt_dir, "latest.pt")
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise ConfigError(f"--resume: {run_dir!r} is not an hrlkit run directory (no config.json)")
    steps = sorted((int(m.group(1)), name) for name in (os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else [])
                   if (m := re.fullmatch(r"step_(\d+)\.pt", name)))
    if not os.path.isfile(latest) and not steps:
        raise ConfigError(f"--resume: {run_dir!r} was stopped before its first checkpoint; start it again with "
                          f"--run-dir {run_dir}")
    candidates = [latest] + [os.path.join(ckpt_dir, name) for _, name in reversed(steps)]
    for i, path in enumerate(candidates):
        if not os.path.isfile(path):
            continue
        try:
            checkpoint.load(path)
        except checkpoint.CheckpointError as exc:
            if not fallback:
                raise checkpoint.CheckpointError(
                    f"{exc}; --resume-fallback continues from the newest intact checkpoint instead") from exc
            print(f"hrlkit train: skipping {path}: {exc}", file=sys.stderr)
            continue
        if i > 0:
            print(f"hrlkit train: resuming from {path}", file=sys.stderr)
        return path
    raise checkpoint.CheckpointError(f"--resume: no intact checkpoint in {ckpt_dir!r}")


def cmd_convert(args) -> int:
    from .runtime import checkpoint

    payload = checkpoint.convert(args.old_path, args.new_path)
    print(f"{args.new_path}: {payload['algo']} checkpoint at step {payload['global_step']} in format "
          f"{checkpoint.VERSION}" + ("; its replay buffer (an old, unchecksummed format) was left out: a resumed run "
                                     "refills it" if payload.get("dropped_replay") else ""))
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    from .agents.base import load_agent
    from .runtime.evaluation import check_video_support, evaluate

    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected an int >= 1, got {args.episodes}")
    path = args.checkpoint or os.path.join(args.run_dir, "checkpoints", "latest.pt")
    agent = load_agent(path, env=args.env)
    if args.video:
        check_video_support(agent)
    returns = evaluate(agent, args.episodes, seed=args.seed, video_dir=os.path.join(args.run_dir, "videos") if args.video else None)
    print(json.dumps({"episodes": args.episodes, "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
                      "returns": [float(r) for r in returns]}))
    return 0


def cmd_skills(args) -> int:
    from .agents.base import load_agent
    from .runtime.evaluation import check_video_support
    from .runtime.threads import torch_threads
    from .skills import endpoint_spread, observation_names, plot_skills, rollout_skills, skill_accuracies

    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected an int >= 1, got {args.episodes}")
    path = args.checkpoint or os.path.join(args.run_dir, "checkpoints", "latest.pt")
    agent = load_agent(path, env=args.env)
    if agent.name != "diayn":
        raise ConfigError(f"run_dir: {args.run_dir!r} holds a {agent.name!r} run; skills are drawn for diayn runs")
    if args.video:
        check_video_support(agent)
    with torch_threads(agent.threads):
        rollouts = rollout_skills(agent, args.episodes, deterministic=not args.stochastic, seed=args.seed,
                                  video_dir=os.path.join(args.run_dir, "skills") if args.video else None)
    acc, per_skill = skill_accuracies(agent, rollouts)
    key = "xy" if "xy" in rollouts[0][0] else "obs"  # a car's end points are its positions, not its pixels
    out = plot_skills(rollouts, args.out or os.path.join(args.run_dir, "skills.png"),
                      dim_names=observation_names(agent.env_id, rollouts[0][0]["obs"].shape[1]),
                      title=f"{agent.env_id}: {agent.config.num_skills} skills at step {agent.global_step:,} "
                            f"(discriminator accuracy {acc:.3f})")
    print(json.dumps({"png": out, "discriminator_accuracy": acc,
                      "per_skill_accuracy": per_skill,
                      "endpoint_spread": endpoint_spread(rollouts, key=key),
                      "returns": {k: [ep["return"] for ep in eps] for k, eps in rollouts.items()}}))
    return 0


def cmd_plot(args) -> int:
    from .plotting import plot_runs

    print(plot_runs(args.run_dirs, args.out, metric=args.metric))
    return 0


def cmd_sweep(args) -> int:
    from .distributed.sweeps import cmd_sweep as run

    return run(args)


def cmd_list(args) -> int:
    import gymnasium as gym

    from .envs import REGISTERED

    print("algorithms:", ", ".join(_algorithms()))
    print("hrlkit environments:", ", ".join(REGISTERED))
    print("gymnasium environments:", ", ".join(sorted(k for k in gym.registry if "/" not in k)))
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    from .runtime.errors import EnvError, NonFiniteError

    handlers = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "skills": cmd_skills, "list": cmd_list,
                "convert-checkpoint": cmd_convert, "sweep": cmd_sweep}
    try:
        return handlers[args.command](args)
    except (ConfigError, OSError, ValueError, NonFiniteError, EnvError) as exc:
        print(f"hrlkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
