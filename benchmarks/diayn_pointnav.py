"""DIAYN acceptance on hrlkit/PointNav-v0 (issue 6): 8 skills, then how distinguishable and how
spread out they are on fresh rollouts.

    python benchmarks/diayn_pointnav.py                       # seeds 0 1 2, 30k steps each, 2 jobs
    python benchmarks/diayn_pointnav.py --seeds 0 --steps 20000 --out /tmp/diayn

Each seed trains DIAYN with the library defaults updated by benchmarks/configs/diayn_pointnav.yaml
(8 skills, [128, 128] networks) and --set overrides. Then, on fresh envs (seeds 0..4, as for
every skill): the discriminator's accuracy on the next states of 5 deterministic and 5
stochastic episodes per skill; the mean pairwise distance between the 8 skills' end points
(deterministic episode 0) against the same for 8 policies of uniform random actions and for the
8 skills of an untrained agent. Writes under --out: the run directories, skills_seed{S}.png,
results.json and table.md. ``--eval-only`` redoes the evaluation and plots of existing runs.
"""
from __future__ import annotations

import argparse
import json
import os

from _pool import worker_pool
from _report import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = "hrlkit/PointNav-v0"


def run_seed(seed: int, steps: int, out: str, overrides: dict, eval_only: bool = False) -> dict:
    import torch

    torch.set_num_threads(1)
    import hrlkit
    from hrlkit.skills import discriminator_accuracy, endpoint_spread, plot_skills, random_endpoints, rollout_skills

    agent = hrlkit.DIAYN(ENV, seed=seed, config=overrides)
    untrained = rollout_skills(agent, 1, deterministic=True)
    run_dir = os.path.join(out, "runs", f"seed{seed}")
    final = os.path.join(run_dir, "checkpoints", "latest.pt")
    if eval_only:  # the runs exist: evaluate and draw them again, without training
        agent = hrlkit.DIAYN.load(final)
        steps = agent.global_step
    else:
        agent.learn(steps, run_dir=run_dir, progress=False, log_every=5_000, eval_every=None, checkpoint_every=None)
    det = rollout_skills(agent, 5, deterministic=True)
    sto = rollout_skills(agent, 5, deterministic=False)
    acc_det, acc_sto = discriminator_accuracy(agent, det), discriminator_accuracy(agent, sto)
    spread = endpoint_spread(det)
    res = {
        "seed": seed, "steps": steps,
        "accuracy_deterministic": acc_det, "accuracy_stochastic": acc_sto,
        "endpoint_spread": spread,
        "endpoint_spread_random_actions": endpoint_spread(random_endpoints(ENV, None, agent.config.num_skills, seed=seed)),
        "endpoint_spread_untrained": endpoint_spread(untrained),
        "end_points": [det[k][0]["obs"][-1].tolist() for k in sorted(det)],
    }
    plot_skills(det, os.path.join(out, f"skills_seed{seed}.png"),
                title=f"DIAYN, {ENV}, seed {seed}, {steps:,} steps: 8 skills x 5 episodes "
                      f"(discriminator accuracy {acc_det:.3f})")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "diayn_pointnav"))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--eval-only", action="store_true", help="evaluate and draw the runs already under --out")
    args = ap.parse_args(argv)
    from hrlkit.runtime.config import load_config_file, parse_overrides

    overrides = {**load_config_file(os.path.join(HERE, "configs", "diayn_pointnav.yaml")), **parse_overrides(args.set)}
    os.makedirs(args.out, exist_ok=True)
    with worker_pool(args.jobs) as pool:
        results = list(pool.map(run_seed, args.seeds, [args.steps] * len(args.seeds), [args.out] * len(args.seeds),
                                [overrides] * len(args.seeds), [args.eval_only] * len(args.seeds)))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"env": ENV, "overrides": overrides, "results": results}, f, indent=2)
    lines = [f"DIAYN on {ENV}, 8 skills, {args.steps:,} steps per seed; accuracy over the next states of 5 episodes per skill",
             "| seed | accuracy (deterministic) | accuracy (stochastic) | end-point spread | random actions | untrained skills |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['accuracy_deterministic']:.3f} | {r['accuracy_stochastic']:.3f} | {r['endpoint_spread']:.3f} "
              f"| {r['endpoint_spread_random_actions']:.3f} | {r['endpoint_spread_untrained']:.3f} |" for r in results]
    write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
