"""GPU acceptance figures of issue 7, measured in one process on the lent GPU machine:

    python benchmarks/gpu/gpu_benchmarks.py per  [--rows 1000000] [--iters 2000]
    python benchmarks/gpu/gpu_benchmarks.py sps  [--steps 2000] [--env HalfCheetah-v5]

``per``: one PER step = sample(256) with importance weights + update_priorities(256) on a
1M-row buffer of HalfCheetah transitions (obs 17, action 6, reward, next_obs 17, terminated,
option), for (a) hrlkit's device buffer, (b) the same buffer in host memory with the batch
copied to the GPU and the TD errors copied back (what a GPU trainer does with a host buffer),
(c) a plain-torch GPU sum tree (benchmarks/gpu/torch_sum_tree.py); each eagerly and, where the
step has no host sync, replayed as a captured CUDA graph. Time per step = wall time of `iters`
steps, synchronized at both ends, median of 5 repeats.

``sps``: Soft Option-Critic (2 options, [256, 256], batch 256, 1 update per env step) on the
GPU with the device buffer and the gradient step as a CUDA graph (the default there), the same
eagerly, eagerly with the host buffer, on the CPU (same code, all cores), and SB3's SAC on the
GPU (same sizes). SPS = training env steps / wall seconds after
1000 warm-up steps of random actions (not timed); logging on, evaluation and checkpoints off.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

OBS, ACT, B = 17, 6, 256
WARMUP = 1000


# ---- PER ------------------------------------------------------------------------------------------
def _fill(buf_add, rows: int, chunk: int = 100_000, seed: int = 0, options: int = 2):
    rng = np.random.default_rng(seed)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        buf_add(obs=rng.normal(size=(n, OBS)).astype(np.float32), action=rng.normal(size=(n, ACT)).astype(np.float32),
                reward=rng.normal(size=n).astype(np.float32), next_obs=rng.normal(size=(n, OBS)).astype(np.float32),
                terminated=rng.random(n) < 0.01, option=rng.integers(0, options, size=n))


def _time(step, iters: int, repeats: int = 5) -> float:
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    res = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iters):
            step()
        torch.cuda.synchronize()
        res.append((time.perf_counter() - t) / iters)
    return statistics.median(res)


def _graphed(step, iters: int, generators=()) -> float:
    """Capture one step in a CUDA graph and time its replays."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    for gen in generators:  # non-default RNGs used inside the step
        g.register_generator_state(gen)
    with torch.cuda.graph(g):
        step()
    return _time(g.replay, iters)


def per(args) -> dict:
    import hrlkit
    from torch_sum_tree import TorchPrioritizedReplay

    dev = torch.device("cuda")
    spec = {"obs": ((OBS,), "float32"), "action": ((ACT,), "float32"), "reward": ((), "float32"),
            "next_obs": ((OBS,), "float32"), "terminated": ((), "bool")}
    td = torch.rand(B, device=dev)
    results, errors = {}, {}

    gpu = hrlkit.PrioritizedReplayBuffer(args.rows, spec, num_options=2, seed=0, device=dev)
    _fill(gpu.add, args.rows)

    def gpu_step():
        b = gpu.sample(B)
        gpu.update_priorities(b["indices"], td, validate=False)

    results["hrlkit device buffer"] = _time(gpu_step, args.iters)
    try:
        results["hrlkit device buffer, CUDA graph"] = _graphed(gpu_step, args.iters, [gpu.generator])
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        errors["hrlkit device buffer, CUDA graph"] = repr(exc)
    gpu = None  # free the device rows before the next variant fills its own
    torch.cuda.empty_cache()

    cpu = hrlkit.PrioritizedReplayBuffer(args.rows, spec, num_options=2, seed=0)
    _fill(cpu.add, args.rows)

    def host_step():
        b = cpu.sample(B)
        batch = {k: torch.from_numpy(v).to(dev, non_blocking=True) for k, v in b.items()}
        cpu.update_priorities(b["indices"], td.cpu().numpy())
        return batch

    results["hrlkit host buffer + copies"] = _time(host_step, max(200, args.iters // 4))
    cpu = None

    tspec = {"obs": ((OBS,), torch.float32), "action": ((ACT,), torch.float32), "reward": ((), torch.float32),
             "next_obs": ((OBS,), torch.float32), "terminated": ((), torch.bool), "option": ((), torch.int64)}
    peer = TorchPrioritizedReplay(args.rows, tspec, dev)

    def peer_add(**rows):
        peer.add(**{k: torch.as_tensor(v) for k, v in rows.items()})

    _fill(peer_add, args.rows)

    def peer_step():
        b = peer.sample(B, 0.4)
        peer.update_priorities(b["indices"], td)

    results["plain-torch GPU sum tree"] = _time(peer_step, max(200, args.iters // 4))
    try:
        results["plain-torch GPU sum tree, CUDA graph"] = _graphed(peer_step, args.iters)
    except Exception as exc:  # noqa: BLE001
        errors["plain-torch GPU sum tree, CUDA graph"] = repr(exc)
    us = {k: v * 1e6 for k, v in results.items()}
    lines = [f"PER sample({B}) + update on {args.rows:,} rows", "| variant | us per step |", "|---|---|"]
    lines += [f"| {k} | {v:,.1f} |" for k, v in us.items()]
    base = us["hrlkit device buffer"]
    lines.append(f"host+copy / device: {us['hrlkit host buffer + copies'] / base:.2f}x; "
                 f"torch tree / device: {us['plain-torch GPU sum tree'] / base:.2f}x")
    if "hrlkit device buffer, CUDA graph" in us and "plain-torch GPU sum tree, CUDA graph" in us:
        lines.append(f"graphs: torch tree / device: {us['plain-torch GPU sum tree, CUDA graph'] / us['hrlkit device buffer, CUDA graph']:.2f}x")
    for k, e in errors.items():
        lines.append(f"{k}: failed: {e}")
    print("\n".join(lines), flush=True)
    return {"us_per_step": us, "errors": errors, "rows": args.rows, "iters": args.iters}


# ---- SPS ------------------------------------------------------------------------------------------
def soc_sps(env: str, device: str, steps: int, **config) -> float:
    import hrlkit

    agent = hrlkit.SoftOptionCritic(env, seed=0, device=device, num_options=2, batch_size=256, utd_ratio=1.0,
                                    learning_starts=WARMUP, buffer_size=WARMUP + steps, **config)
    with tempfile.TemporaryDirectory() as d:
        kw = dict(run_dir=f"{d}/run", progress=False, eval_every=None, checkpoint_every=None, tensorboard=False,
                  log_every=1000)
        agent.learn(WARMUP, **kw)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        agent.learn(WARMUP + steps, **kw)
        if device == "cuda":
            torch.cuda.synchronize()
            print(f"  (graph: {type(agent._graph).__name__})", flush=True)
        return steps / (time.perf_counter() - t)


def sb3_sps(env: str, device: str, steps: int) -> float:
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", env, seed=0, batch_size=256, train_freq=1, gradient_steps=1, learning_starts=WARMUP,
                buffer_size=WARMUP + steps, device=device, verbose=0)
    model.learn(WARMUP)
    t = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t)


def profile(env: str, steps: int = 300) -> dict:
    """Where a GPU training step's time goes (CUDA graph on): act, env.step, observe and update,
    each ended by a device sync, averaged over `steps` steps after 1000 random and 300 learning
    steps; and the captured gradient step's own time over 200 back-to-back replays."""
    import hrlkit
    from hrlkit.runtime.envs import real_next_obs

    agent = hrlkit.SoftOptionCritic(env, seed=0, device="cuda", num_options=2, batch_size=256, learning_starts=WARMUP,
                                    buffer_size=WARMUP + 300 + steps)
    with tempfile.TemporaryDirectory() as d:
        agent.learn(WARMUP + 300, run_dir=f"{d}/run", progress=False, eval_every=None, checkpoint_every=None,
                    tensorboard=False, log_every=1000)
    phases = {"act": 0.0, "env.step": 0.0, "observe": 0.0, "update": 0.0}
    obs = agent.obs
    for _ in range(steps):
        t0 = time.perf_counter()
        actions = agent.act(obs)
        t1 = time.perf_counter()
        next_obs, rewards, term, trunc, infos = agent.envs.step(actions)
        t2 = time.perf_counter()
        done = np.logical_or(term, trunc)
        agent.observe(obs, actions, rewards, real_next_obs(next_obs, infos, done), term, trunc)
        torch.cuda.synchronize()
        t3 = time.perf_counter()
        agent.global_step += agent.config.num_envs
        if done.any():
            agent.on_episode_start(done)
        obs = next_obs
        if agent.ready():
            agent.update()
        torch.cuda.synchronize()
        t4 = time.perf_counter()
        for k, a, b in (("act", t0, t1), ("env.step", t1, t2), ("observe", t2, t3), ("update", t3, t4)):
            phases[k] += (b - a) / steps
    out = {"ms_per_step": {k: v * 1e3 for k, v in phases.items()}}
    if isinstance(agent._graph, torch.cuda.CUDAGraph):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(200):
            agent._graph.replay()
        torch.cuda.synchronize()
        out["graph_replay_ms"] = (time.perf_counter() - t) / 200 * 1e3
    print("step profile (ms):", {k: round(v, 3) for k, v in out["ms_per_step"].items()},
          "| gradient-step graph alone:", round(out.get("graph_replay_ms", float("nan")), 3), "ms", flush=True)
    return out


def sps(args) -> dict:
    every = {
        "graph": ("hrlkit SOC, GPU, device replay, CUDA graphs", lambda: soc_sps(args.env, "cuda", args.steps)),
        "eager": ("hrlkit SOC, GPU, device replay, eager",
                  lambda: soc_sps(args.env, "cuda", args.steps, cuda_graph=False)),
        "host": ("hrlkit SOC, GPU, host replay, eager",
                 lambda: soc_sps(args.env, "cuda", args.steps, replay_device="cpu")),
        "cpu": (f"hrlkit SOC, CPU ({torch.get_num_threads()} threads)",
                lambda: soc_sps(args.env, "cpu", args.cpu_steps)),
        "sb3": ("SB3 SAC, GPU", lambda: sb3_sps(args.env, "cuda", args.steps)),
    }
    keys = [k for k in args.runs.split(",") if k]
    runs = dict(every[k] for k in keys)
    res, errors = {}, {}
    for name, run in runs.items():
        try:
            res[name] = run()
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            errors[name] = repr(exc)
        print(f"{name}: {res.get(name, float('nan')):.1f} SPS", flush=True)
    names = {k: every[k][0] for k in every}
    lines = [f"{args.env}, SOC 2 options vs SB3 SAC, batch 256, [256, 256], 1 update/step",
             "| run | SPS |", "|---|---|"] + [f"| {k} | {v:,.1f} |" for k, v in res.items()]
    if names["graph"] in res and names["cpu"] in res:
        lines.append(f"GPU / CPU (same code): {res[names['graph']] / res[names['cpu']]:.2f}x")
    if names["graph"] in res and names["sb3"] in res:
        lines.append(f"hrlkit SOC GPU / SB3 SAC GPU: {res[names['graph']] / res[names['sb3']]:.2f}x")
    for k, e in errors.items():
        lines.append(f"{k}: failed: {e}")
    print("\n".join(lines), flush=True)
    prof = {}
    if args.profile:
        try:
            prof = profile(args.env)
        except Exception as exc:  # noqa: BLE001
            errors["profile"] = repr(exc)
            print(f"profile failed: {exc!r}", flush=True)
    return {"sps": res, "errors": errors, "steps": args.steps, "cpu_steps": args.cpu_steps, "env": args.env,
            "profile": prof}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["per", "sps"])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--cpu-steps", type=int, default=1000)
    ap.add_argument("--profile", action="store_true", help="sps: also break a GPU step into its phases")
    ap.add_argument("--runs", default="graph,eager,host,cpu,sb3", help="sps: which runs (comma-separated)")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: these benchmarks need the GPU machine", file=sys.stderr)
        return 2
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads()}
    print(info, flush=True)
    out = per(args) if args.what == "per" else sps(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**info, **out}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
