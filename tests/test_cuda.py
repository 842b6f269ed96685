"""The CUDA twins (hrlkit._cuda) against the CPU kernels and the torch references, and the
replay buffers on a CUDA storage against the same buffers in host memory. Skipped where no GPU (or no _cuda build)
is present; CI has none, the lent GPU machine runs them (benchmarks/gpu/run_device_checks.sh).
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

import hrlkit
from hrlkit import _cuda_ops, targets
from hrlkit._cuda_storage import CudaStorage
from hrlkit.runtime.cuda_graphs import CapturedStep

pytestmark = pytest.mark.skipif(not _cuda_ops.available(), reason="needs a GPU and hrlkit._cuda")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def cuda(x):
    return None if x is None else torch.as_tensor(np.asarray(x)).cuda()


def host(x):
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def close(got, want, dtype):
    assert isinstance(got, torch.Tensor) and got.is_cuda
    np.testing.assert_allclose(host(got), host(want), **TOL[dtype])


# ---- targets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_nstep_returns_cuda_matches_cpu(dtype):
    rng = np.random.default_rng(0)
    T, N = 37, 5
    d = dict(rewards=rng.normal(size=(T, N)).astype(dtype), terminated=rng.random((T, N)) < 0.2,
             truncated=rng.random((T, N)) < 0.15, option_terminations=rng.random((T, N)) < 0.3,
             next_values=rng.normal(size=(T, N)).astype(dtype))
    for keys, lam in ((("truncated", "option_terminations", "next_values"), 1.0), ((), 1.0),
                      (("truncated", "option_terminations", "next_values"), 0.9), (("next_values",), 0.0)):
        args = {k: (v if k in keys or k in ("rewards", "terminated") else None) for k, v in d.items()}
        want = targets.nstep_returns(args["rewards"], args["terminated"], args["truncated"], gamma=0.9, n=4,
                                     option_terminations=args["option_terminations"], next_values=args["next_values"],
                                     lam=lam)
        got = targets.nstep_returns(cuda(args["rewards"]), cuda(args["terminated"]), cuda(args["truncated"]), gamma=0.9,
                                    n=4, option_terminations=cuda(args["option_terminations"]),
                                    next_values=cuda(args["next_values"]), lam=lam, backend="cuda")
        close(got.returns, want.returns, dtype)
        close(got.discounts, want.discounts, dtype)
        np.testing.assert_array_equal(host(got.steps), want.steps)
        assert got.returns.dtype == torch.from_numpy(want.returns).dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_option_values_and_bootstrap_cuda_match_cpu(dtype):
    rng = np.random.default_rng(1)
    B, K = 300, 5
    q = rng.normal(size=(B, K)).astype(dtype)
    o = rng.integers(0, K, size=B)
    close(targets.option_values(cuda(q), 0.1, backend="cuda"), targets.option_values(q, 0.1), dtype)
    for beta in (rng.random(B).astype(dtype), rng.random((B, K)).astype(dtype)):
        close(targets.option_bootstrap(cuda(q), cuda(beta), cuda(o), 0.05, backend="cuda"),
              targets.option_bootstrap(q, beta, o, 0.05), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,tau", [("expected", 1.0), ("soft", 0.3), ("expected", 0.0)])
def test_soft_option_targets_cuda_matches_cpu(dtype, mode, tau):
    rng = np.random.default_rng(2)
    B, K = 256, 4
    args = (rng.normal(size=(2, B)).astype(dtype), rng.normal(size=B).astype(dtype),
            rng.normal(size=(B, K)).astype(dtype), rng.random(B).astype(dtype), rng.integers(0, K, size=B),
            rng.normal(size=B).astype(dtype), (0.99 * (rng.random(B) < 0.9)).astype(dtype),
            rng.random(K).astype(dtype))
    kw = dict(option_temperature=tau, deliberation_cost=0.01, mode=mode)
    want = targets.soft_option_targets(*args, **kw)
    got = targets.soft_option_targets(*(cuda(a) for a in args), **kw, backend="cuda")
    for g, w in zip(got, want):
        close(g, w, dtype)
    ref = targets.soft_option_targets(*(cuda(a) for a in args), **kw, backend="torch")
    for g, w in zip(got, ref):
        close(g, w, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_skill_rewards_cuda_matches_cpu(dtype):
    rng = np.random.default_rng(3)
    logits = (3 * rng.normal(size=(513, 10))).astype(dtype)
    z = rng.integers(0, 10, size=513)
    want = targets.skill_rewards(logits, z)
    got = targets.skill_rewards(cuda(logits), cuda(z), backend="cuda")
    close(got.reward, want.reward, dtype)
    np.testing.assert_array_equal(host(got.correct), want.correct)


@pytest.mark.parametrize("dtype", DTYPES)
def test_feudal_terms_cuda_matches_cpu(dtype):
    rng = np.random.default_rng(4)
    c, T, N, D = 10, 40, 6, 16
    states = rng.normal(size=(c + T, N, D)).astype(dtype)
    goals = rng.normal(size=(c + T, N, D)).astype(dtype)
    goals[5, 2] = 0.0  # a zero goal
    states[20, 1] = states[19, 1]  # a zero-norm difference
    starts = rng.random((c + T, N)) < 0.05
    starts[0] = True
    want = targets.feudal_terms(states, goals, starts, c=c)
    got = targets.feudal_terms(cuda(states), cuda(goals), cuda(starts), c=c, backend="cuda")
    close(got.intrinsic, want.intrinsic, dtype)
    close(got.direction, want.direction, dtype)
    np.testing.assert_array_equal(host(got.horizon), want.horizon)


def test_ids_are_validated_on_cuda_unless_told_not_to():
    q, b = cuda(np.zeros((3, 2), np.float32)), cuda(np.zeros(3, np.float32))
    bad = cuda(np.array([0, 2, 1]))
    with pytest.raises(IndexError, match="options"):
        targets.option_bootstrap(q, b, bad)
    out = targets.option_bootstrap(q, b, bad, validate=False)
    assert torch.isnan(out[1]) and not torch.isnan(out[0]) and not torch.isnan(out[2])
    with pytest.raises(IndexError, match="skills"):
        targets.skill_rewards(q, bad)


def test_auto_backend_routes_cuda_tensors_to_the_kernel_and_cpp_refuses_them():
    q = cuda(np.random.default_rng(5).normal(size=(8, 3)).astype(np.float32))
    np.testing.assert_allclose(host(targets.option_values(q)), host(targets.option_values(q, backend="torch")), rtol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        targets.option_values(q, backend="cpp")


# ---- replay on a CUDA storage ---------------------------------------------------------------------
SPEC = {"obs": ((3,), "float32"), "action": ((2,), "float32"), "reward": ((), "float32"), "done": ((), "bool"),
        "step": ((), "int64")}


def rows(rng, n, start=0, num_options=None):
    d = dict(obs=rng.normal(size=(n, 3)).astype(np.float32), action=rng.normal(size=(n, 2)).astype(np.float32),
             reward=rng.normal(size=n).astype(np.float32), done=rng.random(n) < 0.5,
             step=np.arange(start, start + n, dtype=np.int64))
    if num_options:
        d["option"] = rng.integers(0, num_options, size=n)
    return d


def twins(cls, capacity, seed=0, **kw):
    return cls(capacity, SPEC, seed=seed, **kw), cls(capacity, SPEC, seed=seed, device="cuda", **kw)


def on_cuda(buf, cls) -> bool:
    """One class for both storages: the buffer is of ``cls`` itself, its storage on a CUDA device."""
    return type(buf) is cls and buf.device.type == "cuda" and isinstance(buf._storage, CudaStorage)


def assert_same_rows(cpu, dev):
    assert len(cpu) == len(dev) and cpu.position == dev.position
    n = len(cpu)
    if n:
        idx = np.arange(n)
        a, b = cpu.get(idx), dev.get(idx)
        for k in a:
            np.testing.assert_array_equal(a[k], host(b[k]), err_msg=k)


@pytest.mark.parametrize("num_options", [None, 3])
def test_device_buffer_adds_like_the_cpu_buffer(num_options):
    rng = np.random.default_rng(6)
    cpu, dev = twins(hrlkit.ReplayBuffer, 50, num_options=num_options)
    assert on_cuda(dev, hrlkit.ReplayBuffer) and cpu.device.type == "cpu"
    assert dev.to("cpu").device.type == "cpu" and dev.to("cuda") is dev and cpu.to("cpu") is cpu
    start = 0
    for n in (1, 7, 30, 20, 64, 3):  # wraps around, and one add larger than the capacity
        d = rows(rng, n, start, num_options)
        start += n
        cpu.add(**d)
        # CUDA tensors for odd n; validate=False once: ids that are CUDA tensors are then not read
        dev.add(**{k: (torch.from_numpy(np.asarray(v)).cuda() if n % 2 else v) for k, v in d.items()}, validate=n != 7)
        assert_same_rows(cpu, dev)
        if num_options:
            for k in range(num_options):
                assert cpu.count(option=k) == dev.count(option=k)
    single = {k: v[0] for k, v in rows(rng, 1, 999, num_options).items()}
    cpu.add(**single)
    dev.add(**single)
    assert_same_rows(cpu, dev)


def test_device_buffer_bad_adds_change_nothing():
    dev = hrlkit.ReplayBuffer(10, SPEC, num_options=2, device="cuda")
    dev.add(**rows(np.random.default_rng(7), 4, 0, 2))
    before = {k: host(v).copy() for k, v in dev.get(np.arange(4)).items()}
    good = rows(np.random.default_rng(8), 2, 0, 2)
    cases = [  # the checks and messages of the host storage (one copy of them: hrlkit._replay_checks)
        ({**good, "obs": np.zeros((2, 4), np.float32)}, ValueError, "^obs: expected shape"),
        ({**good, "step": np.zeros(2, np.float32)}, ValueError, "^step: expected dtype int64"),
        ({**good, "step": torch.zeros(2, dtype=torch.float32).cuda()}, ValueError, "^step: expected dtype int64"),
        ({**good, "option": np.array([0, 2])}, ValueError, r"^option: expected ids in \[0, 2\), got 2"),
        ({**good, "option": torch.tensor([0, -1]).cuda()}, ValueError, r"^option: expected ids in \[0, 2\), got -1"),
        ({**good, "reward": np.zeros(3, np.float32)}, ValueError, "rows"),
        ({**good, "reward": np.zeros(0, np.float32)}, ValueError, "^reward: expected shape"),
        ({k: v for k, v in good.items() if k != "done"}, ValueError, "done"),
        ({**good, "extra": np.zeros(2)}, ValueError, "extra"),
    ]
    in_memory = hrlkit.ReplayBuffer(10, SPEC, num_options=2)
    for fields, exc, match in cases:
        with pytest.raises(exc, match=match) as on_device:
            dev.add(**fields)
        with pytest.raises(exc) as on_host:
            in_memory.add(**{k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in fields.items()})
        assert str(on_device.value) == str(on_host.value)
    assert len(dev) == 4 and dev.position == 4
    for k, v in dev.get(np.arange(4)).items():
        np.testing.assert_array_equal(host(v), before[k])
    with pytest.raises(IndexError, match="indices"):
        dev.get([0, 4])


def expected_draws(leaves: np.ndarray, rand: np.ndarray) -> np.ndarray:
    """The stratified draw u_j = (j + r_j) total / n located by a float64 prefix sum."""
    cum = np.cumsum(leaves.astype(np.float64))
    n = len(rand)
    u = (np.arange(n) + rand) * (cum[-1] / n)
    return np.minimum(np.searchsorted(cum, u, side="right"), len(leaves) - 1)


def next_rand(buf, n):
    g = torch.Generator(device=buf.device)
    g.set_state(buf.generator.get_state())
    return host(torch.rand(n, generator=g, device=buf.device, dtype=torch.float64))


def test_prioritized_sample_update_and_weights_match_the_cpu_tree():
    rng = np.random.default_rng(9)
    cpu, dev = twins(hrlkit.PrioritizedReplayBuffer, 3000, alpha=0.7, eps=1e-3)
    d = rows(rng, 2500)
    cpu.add(**d)
    dev.add(**d)
    for _ in range(3):
        idx = rng.integers(0, 2500, size=512)
        idx[:40] = idx[40:80]  # duplicates: the last occurrence wins
        td = rng.exponential(size=512) * (rng.random(512) < 0.9)
        cpu.update_priorities(idx, td)
        dev.update_priorities(torch.from_numpy(idx).cuda(), torch.from_numpy(td).cuda())
        np.testing.assert_allclose(host(dev.priorities()), cpu.priorities()[:2500], rtol=1e-6)
        assert dev.max_priority == pytest.approx(cpu.max_priority)
    rand = next_rand(dev, 256)
    batch = dev.sample(256, beta=0.5)
    leaves = host(dev.priorities())
    np.testing.assert_array_equal(host(batch["indices"]), expected_draws(leaves, rand))
    i = host(batch["indices"])
    want_w = (leaves[leaves > 0].min() / leaves[i]) ** 0.5
    np.testing.assert_allclose(host(batch["weights"]), want_w, rtol=1e-5)
    for k in SPEC:
        np.testing.assert_array_equal(host(batch[k]), d[k][i])
    # the new max priority reaches new rows
    dev.add(**rows(rng, 5))
    assert host(dev.priorities())[-1] == pytest.approx((dev.max_priority) ** 0.7, rel=1e-6)


def test_prioritized_sampling_frequencies_follow_the_priorities():
    rng = np.random.default_rng(10)
    dev = hrlkit.PrioritizedReplayBuffer(64, SPEC, alpha=1.0, eps=0.0, seed=1, device="cuda")
    dev.add(**rows(rng, 64))
    p = rng.random(64) + 0.05
    dev.update_priorities(np.arange(64), p)
    counts = np.zeros(64)
    for _ in range(200):
        counts += np.bincount(host(dev.sample(512)["indices"]), minlength=64)
    expected = p / p.sum() * counts.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 120  # 63 degrees of freedom: p(chi2 > 120) < 1e-4


@pytest.mark.parametrize("prioritized", [False, True])
def test_option_sampling_draws_only_that_option(prioritized):
    rng = np.random.default_rng(11)
    cls = hrlkit.PrioritizedReplayBuffer if prioritized else hrlkit.ReplayBuffer
    dev = cls(100, SPEC, num_options=3, device="cuda")
    for _ in range(5):  # wrap around so that options are overwritten
        dev.add(**rows(rng, 37, 0, 3))
    opts = host(dev.get(np.arange(100))["option"])
    for k in range(3):
        assert dev.count(option=k) == int((opts == k).sum())
        b = dev.sample(200, option=k)
        assert (host(b["option"]) == k).all()
        assert (opts[host(b["indices"])] == k).all()
    with pytest.raises(IndexError, match="option"):
        dev.sample(4, option=3)


def test_update_priorities_rejects_bad_input_and_changes_nothing():
    dev = hrlkit.PrioritizedReplayBuffer(20, SPEC, device="cuda")
    dev.add(**rows(np.random.default_rng(12), 10))
    before = host(dev.priorities()).copy()
    with pytest.raises(IndexError, match="indices"):
        dev.update_priorities([0, 10], [1.0, 1.0])
    with pytest.raises(ValueError, match="td_errors"):
        dev.update_priorities([0, 1], [1.0, float("nan")])
    with pytest.raises(ValueError, match="td_errors"):
        dev.update_priorities([0, 1], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="indices"):
        dev.update_priorities([0.5], [1.0])
    with pytest.raises(ValueError, match="^td_errors: expected finite values, got nan at position 1"):
        dev.update_priorities(torch.tensor([0, 1]).cuda(), torch.tensor([1.0, float("nan")]).cuda())
    np.testing.assert_array_equal(host(dev.priorities()), before)
    assert hrlkit.ReplayBuffer(4, SPEC, device="cuda").priorities() is None


@pytest.mark.parametrize("prioritized", [False, True])
def test_save_load_round_trip_between_host_and_device(tmp_path, prioritized):
    rng = np.random.default_rng(13)
    cls = hrlkit.PrioritizedReplayBuffer if prioritized else hrlkit.ReplayBuffer
    dev = cls(40, SPEC, num_options=2, device="cuda")
    dev.add(**rows(rng, 55, 0, 2))
    if prioritized:
        dev.update_priorities(np.arange(40), rng.random(40))
    path = tmp_path / "r.bin"
    dev.save(path)
    on_cpu = cls.load(path)
    assert isinstance(on_cpu, cls)
    assert_same_rows(on_cpu, dev)
    back = cls.load(path, device="cuda")
    assert_same_rows(on_cpu, back)
    stream = io.BytesIO()
    on_cpu.save(stream)
    stream.seek(0)
    again = cls.load(stream, device="cuda")
    assert_same_rows(on_cpu, again)
    if prioritized:
        np.testing.assert_allclose(host(again.priorities()), on_cpu.priorities()[:40])
        np.testing.assert_allclose(host(back.priorities()), host(dev.priorities()))
    for k in range(2):
        assert again.count(option=k) == on_cpu.count(option=k)


# ---- agent ----------------------------------------------------------------------------------------
def test_soft_option_critic_trains_on_the_gpu_with_a_device_buffer(tmp_path):
    kw = dict(progress=False, eval_every=None, checkpoint_every=None, tensorboard=False, log_every=100)
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, device="cuda", learning_starts=64, batch_size=64,
                                    hidden_sizes=[32, 32], option_hidden_sizes=[32], buffer_size=1000)
    assert on_cuda(agent.buffer, hrlkit.PrioritizedReplayBuffer)
    agent.learn(300, run_dir=str(tmp_path / "a"), **kw)
    assert agent.num_updates > 200
    for p in agent.actor.parameters():
        assert torch.isfinite(p).all()
    host_agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=0, device="cuda", replay_device="cpu", batch_size=64,
                                         learning_starts=64, hidden_sizes=[32, 32], option_hidden_sizes=[32])
    assert type(host_agent.buffer) is hrlkit.PrioritizedReplayBuffer and host_agent.buffer.device.type == "cpu"
    host_agent.learn(150, run_dir=str(tmp_path / "b"), **kw)
    # a checkpoint with the replay resumes into a device buffer again
    agent.config.save_replay = True
    agent.save(str(tmp_path / "ckpt.pt"))
    again = hrlkit.SoftOptionCritic.load(str(tmp_path / "ckpt.pt"), device="cuda")
    assert on_cuda(again.buffer, hrlkit.PrioritizedReplayBuffer) and len(again.buffer) == len(agent.buffer)


# ---- CUDA graphs ----------------------------------------------------------------------------------
def test_captured_step_warms_up_captures_and_replays():
    x = torch.zeros(3, device="cuda")
    calls = []

    def fn():
        calls.append(1)
        x.add_(1.0)
        return {"sum": x.sum(), "first": x[0] * 2}

    step = CapturedStep(fn, device="cuda", warmup=2)
    outs = [step() for _ in range(5)]
    torch.cuda.synchronize()
    assert len(calls) == 3  # two eager warm-up steps, then the capture; the rest are replays
    assert isinstance(step.graph, torch.cuda.CUDAGraph) and not step.failed
    assert [o["first"].item() for o in outs] == [2.0, 4.0, 6.0, 8.0, 10.0]  # each call's own values
    assert outs[-1]["sum"].item() == 15.0
    step.reset()
    assert step.graph is None
    step()
    assert len(calls) == 4  # warming up again


def test_captured_step_dry_runs_static_inputs_and_generators():
    y = torch.zeros(2, device="cuda")
    step = CapturedStep(lambda: y * 3, device="cuda", warmup=0, dry_runs=2)
    y.fill_(1.0)
    a = step().clone()  # the first call already replays
    y.fill_(2.0)
    b = step()
    assert isinstance(step.graph, torch.cuda.CUDAGraph)
    assert a.tolist() == [3.0, 3.0] and b.tolist() == [6.0, 6.0]
    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    draw = CapturedStep(lambda: torch.rand(4, device="cuda", generator=gen), device="cuda", warmup=1,
                        generators=lambda: [gen])
    draws = [draw().clone() for _ in range(3)]
    assert isinstance(draw.graph, torch.cuda.CUDAGraph)
    assert not torch.equal(draws[1], draws[2])  # registered: every replay draws fresh numbers


def test_captured_step_falls_back_to_eager_with_one_warning():
    x = torch.ones(3, device="cuda")

    def fn():
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("an op that cannot be captured")
        return x.sum()

    step = CapturedStep(fn, device="cuda", warmup=1, name="the test step")
    assert step().item() == 3.0
    with pytest.warns(RuntimeWarning, match="capturing the test step failed"):
        assert step().item() == 3.0  # this call's step ran eagerly
    assert step.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert step().item() == 3.0  # eager from now on, without another warning


def test_soft_option_critic_gradient_step_runs_as_a_cuda_graph(tmp_path):
    agent = hrlkit.SoftOptionCritic("Pendulum-v1", seed=1, device="cuda", learning_starts=64, batch_size=64,
                                    hidden_sizes=[32, 32], option_hidden_sizes=[32], buffer_size=1000)
    agent.learn(200, run_dir=str(tmp_path / "g"), progress=False, eval_every=None, checkpoint_every=None,
                tensorboard=False, log_every=100)
    assert isinstance(agent._train_step.graph, torch.cuda.CUDAGraph)
    assert isinstance(agent._act_step.graph, torch.cuda.CUDAGraph)
    assert agent._graph is agent._train_step.graph  # what benchmarks/gpu reads
    acts = [agent.act(agent.obs) for _ in range(3)]
    assert all(a.shape == (1, 1) and np.all(np.abs(a) <= 2.0) for a in acts)
    assert len({float(a[0, 0]) for a in acts}) == 3  # fresh noise at every replay
    before = [p.detach().clone() for p in agent.critic.parameters()]
    first = agent.update() if agent.ready() else None
    agent.update_credit = 2.0
    a = agent.update()
    agent.update_credit = 1.0
    b = agent.update()
    assert first is None or set(first) == set(a)
    assert a["losses/critic"].item() != b["losses/critic"].item()  # each replay's own values, not one buffer
    assert all(torch.isfinite(v).all() for v in b.values())
    after = list(agent.critic.parameters())
    assert any(not torch.equal(x, y) for x, y in zip(before, after))  # the replays trained the critics
    assert agent.buffer.max_priority > 0
