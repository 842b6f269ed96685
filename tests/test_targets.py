"""Tests of hrlkit.nstep_returns / option_values / option_bootstrap.

The C++ kernels are compared with the torch references in hrlkit.targets on random inputs, and
both with hand-computed tiny examples.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hrlkit import nstep_returns, option_bootstrap, option_values
from hrlkit.targets import (
    NStepReturns,
    nstep_returns_reference,
    option_bootstrap_reference,
    option_values_reference,
)

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def to_np(x):
    return x.numpy() if isinstance(x, torch.Tensor) else x


def random_rollout(rng, T, N, dtype, *, truncated, option_ends, next_values):
    return dict(
        rewards=rng.normal(size=(T, N)).astype(dtype),
        terminated=rng.random((T, N)) < 0.2,
        truncated=(rng.random((T, N)) < 0.15) if truncated else None,
        option_terminations=(rng.random((T, N)) < 0.3) if option_ends else None,
        next_values=rng.normal(size=(T, N)).astype(dtype) if next_values else None,
    )


def as_torch(d):
    return {k: None if v is None else torch.from_numpy(np.asarray(v)) for k, v in d.items()}


def call_nstep(fn, d, gamma, n, **kw):
    return fn(d["rewards"], d["terminated"], d["truncated"], gamma=gamma, n=n,
              option_terminations=d["option_terminations"], next_values=d["next_values"], **kw)


def assert_nstep_close(got: NStepReturns, want: NStepReturns, dtype):
    tol = TOL[dtype]
    np.testing.assert_allclose(to_np(got.returns), to_np(want.returns), **tol)
    np.testing.assert_allclose(to_np(got.discounts), to_np(want.discounts), **tol)
    np.testing.assert_array_equal(to_np(got.steps), to_np(want.steps))
    assert to_np(got.returns).dtype == np.dtype(dtype)
    assert to_np(got.discounts).dtype == np.dtype(dtype)
    assert to_np(got.steps).dtype == np.int64


# ---- hand-computed examples -----------------------------------------------------------------
R = np.array([[1.0], [2.0], [4.0]])
NV = np.array([[10.0], [20.0], [30.0]])
ZERO = np.zeros((3, 1), bool)
MID = np.array([[False], [True], [False]])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_termination_in_the_middle(backend):
    out = nstep_returns(R, MID, gamma=0.5, n=3, backend=backend)
    # t=0: 1 + 0.5*2 (stops at the terminal step 1); t=1: 2 (terminal); t=2: 4 (rollout ends)
    np.testing.assert_allclose(out.returns, [[2.0], [2.0], [4.0]])
    np.testing.assert_allclose(out.discounts, [[0.0], [0.0], [0.5]])
    np.testing.assert_array_equal(out.steps, [[2], [1], [1]])
    boot = nstep_returns(R, MID, gamma=0.5, n=3, next_values=NV, backend=backend)
    # only the window that did not end on a terminal step bootstraps: 4 + 0.5 * V(s_3)=30
    np.testing.assert_allclose(boot.returns, [[2.0], [2.0], [19.0]])
    np.testing.assert_allclose(boot.discounts, out.discounts)
    np.testing.assert_array_equal(boot.steps, out.steps)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("kind", ["truncated", "option_terminations"])
def test_truncation_or_option_end_in_the_middle_bootstraps(backend, kind):
    out = nstep_returns(R, ZERO, gamma=0.5, n=3, next_values=NV, backend=backend, **{kind: MID})
    # t=0: 1 + 0.5*2 + 0.25 * V(s_2)=20; t=1: 2 + 0.5*20; t=2: 4 + 0.5*30
    np.testing.assert_allclose(out.returns, [[7.0], [12.0], [19.0]])
    np.testing.assert_allclose(out.discounts, [[0.25], [0.5], [0.5]])
    np.testing.assert_array_equal(out.steps, [[2], [1], [1]])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_no_ends_gamma_powers(backend):
    out = nstep_returns(R, ZERO, gamma=0.5, n=2, backend=backend)
    np.testing.assert_allclose(out.returns, [[1 + 0.5 * 2], [2 + 0.5 * 4], [4.0]])
    np.testing.assert_allclose(out.discounts, [[0.25], [0.25], [0.5]])
    np.testing.assert_array_equal(out.steps, [[2], [2], [1]])
    one = nstep_returns(R, MID, gamma=0.5, n=1, backend=backend)
    np.testing.assert_allclose(one.returns, R)
    np.testing.assert_allclose(one.discounts, [[0.5], [0.0], [0.5]])
    np.testing.assert_array_equal(one.steps, [[1], [1], [1]])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_n_larger_than_T_and_gamma_edges(backend):
    big = nstep_returns(R, ZERO, gamma=1.0, n=10, backend=backend)
    np.testing.assert_allclose(big.returns, [[7.0], [6.0], [4.0]])
    np.testing.assert_allclose(big.discounts, np.ones((3, 1)))
    np.testing.assert_array_equal(big.steps, [[3], [2], [1]])
    zero = nstep_returns(R, ZERO, gamma=0.0, n=3, next_values=NV, backend=backend)
    np.testing.assert_allclose(zero.returns, R)  # gamma 0: no later reward, no bootstrap
    np.testing.assert_allclose(zero.discounts, np.zeros((3, 1)))


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_envs_are_independent_columns(backend):
    rewards = np.array([[1.0, 10.0], [2.0, 20.0]])
    term = np.array([[True, False], [False, False]])
    out = nstep_returns(rewards, term, gamma=0.9, n=2, backend=backend)
    np.testing.assert_allclose(out.returns, [[1.0, 10.0 + 0.9 * 20.0], [2.0, 20.0]])
    np.testing.assert_allclose(out.discounts, [[0.0, 0.81], [0.9, 0.9]])
    np.testing.assert_array_equal(out.steps, [[1, 2], [1, 1]])


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_option_values_and_bootstrap_by_hand(backend):
    q = np.array([[1.0, 3.0, 2.0], [-1.0, -2.0, 0.0]])
    np.testing.assert_allclose(option_values(q, backend=backend), [3.0, 0.0])
    # eps = 0.3: 0.7 * max + 0.3 * mean
    np.testing.assert_allclose(option_values(q, 0.3, backend=backend), [0.7 * 3 + 0.3 * 2, 0.7 * 0 + 0.3 * -1])
    beta = np.array([0.25, 1.0])
    options = np.array([0, 1])
    # U = (1 - b) Q[w] + b V
    np.testing.assert_allclose(option_bootstrap(q, beta, options, backend=backend), [0.75 * 1 + 0.25 * 3, 0.0])
    per_option = np.array([[0.25, 0.0, 0.0], [0.0, 0.5, 0.0]])  # column w is used
    np.testing.assert_allclose(option_bootstrap(q, per_option, options, backend=backend), [1.5, 0.5 * -2 + 0.5 * 0])
    np.testing.assert_allclose(option_bootstrap(q, beta, options, 0.3, backend=backend),
                               [0.75 * 1 + 0.25 * 2.7, -0.3])


# ---- kernel vs reference on random inputs ---------------------------------------------------
def lambda_returns_by_recursion(d, gamma, lam):
    """G_t = r_t + gamma ((1 - lam) V_{t+1} + lam G_{t+1}), backwards per env; a terminal step
    ends with r_t, a truncated one, an option's end or the rollout's last step with r_t + gamma V_{t+1}."""
    r, nv, term = (np.asarray(d[k], np.float64) for k in ("rewards", "next_values", "terminated"))
    stop = np.zeros(r.shape, bool)
    for k in ("truncated", "option_terminations"):
        if d[k] is not None:
            stop |= np.asarray(d[k], bool)
    T, N = r.shape
    g = np.zeros((T, N))
    for e in range(N):
        for t in reversed(range(T)):
            if term[t, e]:
                g[t, e] = r[t, e]
            elif stop[t, e] or t == T - 1:
                g[t, e] = r[t, e] + gamma * nv[t, e]
            else:
                g[t, e] = r[t, e] + gamma * ((1 - lam) * nv[t, e] + lam * g[t + 1, e])
    return g


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("option_ends", [False, True])
def test_lambda_returns_are_the_recursion(backend, lam, option_ends):
    rng = np.random.default_rng(int(lam * 100) + option_ends)
    d = random_rollout(rng, 25, 4, np.float64, truncated=True, option_ends=option_ends, next_values=True)
    out = call_nstep(nstep_returns, d, 0.9, 25, lam=lam, backend=backend)
    np.testing.assert_allclose(out.returns, lambda_returns_by_recursion(d, 0.9, lam), rtol=1e-12, atol=1e-12)
    # disc: the weight of the window's last bootstrap, gamma^k lam^(k-1), 0 after a terminal step
    end = (out.steps - 1) + np.arange(25)[:, None]
    want = np.where(np.take_along_axis(d["terminated"], end, 0), 0.0, 0.9 ** out.steps * lam ** (out.steps - 1.0))
    np.testing.assert_allclose(out.discounts, want, rtol=1e-12)
    if lam == 0.0:  # one-step TD targets wherever the step is not terminal
        np.testing.assert_allclose(out.returns, d["rewards"] + 0.9 * np.where(d["terminated"], 0.0, d["next_values"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 50])
def test_lambda_kernel_matches_reference_and_lam_one_is_the_nstep_return(dtype, n):
    rng = np.random.default_rng(n)
    d = random_rollout(rng, 20, 4, dtype, truncated=True, option_ends=True, next_values=True)
    for lam in (0.0, 0.7, 0.95):
        assert_nstep_close(call_nstep(nstep_returns, d, 0.95, n, lam=lam),
                           call_nstep(nstep_returns_reference, d, 0.95, n, lam=lam), dtype)
    plain, one = call_nstep(nstep_returns, d, 0.95, n), call_nstep(nstep_returns, d, 0.95, n, lam=1.0)
    for a, b in zip(plain, one):
        np.testing.assert_array_equal(a, b)  # bit for bit


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("lam, error, match", [
    (1.5, ValueError, "lam: expected a number <= 1"), (-0.1, ValueError, "lam: expected a number >= 0"),
    (float("nan"), ValueError, "lam: expected a finite"), ("0.9", TypeError, "lam: expected a real number"),
])
def test_bad_lambda_is_refused_naming_it(backend, lam, error, match):
    d = random_rollout(np.random.default_rng(0), 3, 2, np.float32, truncated=False, option_ends=False, next_values=True)
    with pytest.raises(error, match=match):
        call_nstep(nstep_returns, d, 0.9, 3, lam=lam, backend=backend)
    d["next_values"] = None
    with pytest.raises(ValueError, match="lam: a lambda-return .* needs next_values"):
        call_nstep(nstep_returns, d, 0.9, 3, lam=0.5, backend=backend)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_torch", [False, True])
@pytest.mark.parametrize("truncated, option_ends, next_values",
                         [(False, False, False), (True, False, True), (False, True, False), (True, True, True)])
@pytest.mark.parametrize("n", [1, 3, 7, 50])
def test_nstep_kernel_matches_reference(dtype, use_torch, truncated, option_ends, next_values, n):
    rng = np.random.default_rng(n * 7 + truncated * 3 + option_ends * 5 + next_values)
    d = random_rollout(rng, 20, 4, dtype, truncated=truncated, option_ends=option_ends, next_values=next_values)
    if use_torch:
        d = as_torch(d)
    for gamma in (0.0, 0.9, 1.0):
        got = call_nstep(nstep_returns, d, gamma, n)
        want = call_nstep(nstep_returns_reference, d, gamma, n)
        assert_nstep_close(got, want, dtype)
        forced = call_nstep(nstep_returns, d, gamma, n, backend="torch")
        assert_nstep_close(forced, want, dtype)
        kind = torch.Tensor if use_torch else np.ndarray
        assert all(isinstance(x, kind) for x in (*got, *forced))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_torch", [False, True])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 1.0])
def test_option_kernels_match_reference(dtype, use_torch, epsilon):
    rng = np.random.default_rng(int(epsilon * 10))
    B, K = 33, 5
    q = rng.normal(size=(B, K)).astype(dtype)
    options = rng.integers(0, K, size=B)
    betas = [rng.random(B).astype(dtype), rng.random((B, K)).astype(dtype)]
    wrap = torch.from_numpy if use_torch else (lambda a: a)
    kind = torch.Tensor if use_torch else np.ndarray

    v = option_values(wrap(q), epsilon)
    assert isinstance(v, kind) and to_np(v).dtype == dtype and to_np(v).shape == (B,)
    np.testing.assert_allclose(to_np(v), to_np(option_values_reference(wrap(q), epsilon)), **TOL[dtype])
    for beta in betas:
        u = option_bootstrap(wrap(q), wrap(beta), wrap(options), epsilon)
        assert isinstance(u, kind) and to_np(u).dtype == dtype and to_np(u).shape == (B,)
        want = option_bootstrap_reference(wrap(q), wrap(beta), wrap(options), epsilon)
        np.testing.assert_allclose(to_np(u), to_np(want), **TOL[dtype])


def test_output_type_follows_rewards_and_carries_no_gradient():
    rng = np.random.default_rng(0)
    r = torch.tensor(rng.normal(size=(5, 2)), dtype=torch.float32, requires_grad=True)
    term = torch.zeros(5, 2, dtype=torch.bool)
    out = nstep_returns(r, term, gamma=0.9, n=2)
    assert all(isinstance(x, torch.Tensor) and not x.requires_grad for x in out)
    assert out.returns.dtype == torch.float32 and out.steps.dtype == torch.int64
    q = torch.randn(4, 3, requires_grad=True, generator=torch.Generator().manual_seed(0))
    v = option_values(q)
    assert isinstance(v, torch.Tensor) and not v.requires_grad
    u = option_bootstrap(q, torch.full((4,), 0.5), torch.tensor([0, 1, 2, 0]))
    assert isinstance(u, torch.Tensor) and not u.requires_grad
    np_out = nstep_returns(r.detach().numpy(), term.numpy(), gamma=0.9, n=2)
    assert all(isinstance(x, np.ndarray) for x in np_out)
    np.testing.assert_allclose(np_out.returns, out.returns.numpy())


def test_mixed_dtypes_promote_to_float64():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(6, 2)).astype(np.float32)
    nv = rng.normal(size=(6, 2))  # float64
    term = np.zeros((6, 2), bool)
    out = nstep_returns(r, term, gamma=0.9, n=3, next_values=nv)
    assert out.returns.dtype == np.float64
    ref = nstep_returns_reference(r, term, gamma=0.9, n=3, next_values=nv)
    np.testing.assert_allclose(out.returns, ref.returns, rtol=1e-6)
    # integer rewards and float / int flags are accepted
    ints = nstep_returns(np.arange(12).reshape(6, 2), term.astype(np.float32), gamma=0.5, n=2)
    assert ints.returns.dtype == np.float32
    np.testing.assert_allclose(ints.returns[0], [0 + 0.5 * 2, 1 + 0.5 * 3])


def test_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    r = rng.normal(size=(4, 9))
    term = rng.random((4, 9)) < 0.3
    got = nstep_returns(r.T, term.T, gamma=0.8, n=3)  # transposed views, [9, 4]
    want = nstep_returns_reference(np.ascontiguousarray(r.T), np.ascontiguousarray(term.T), gamma=0.8, n=3)
    assert_nstep_close(got, want, np.float64)
    q = rng.normal(size=(6, 4))[:, ::2]
    np.testing.assert_allclose(option_values(q, 0.2), option_values_reference(np.ascontiguousarray(q), 0.2))


# ---- bad input ------------------------------------------------------------------------------
r3 = np.zeros((3, 2), np.float32)
t3 = np.zeros((3, 2), bool)
q3 = np.zeros((3, 2), np.float32)
b3 = np.zeros(3, np.float32)
o3 = np.zeros(3, np.int64)

BAD = [
    ("gamma > 1", lambda be: nstep_returns(r3, t3, gamma=1.5, n=1, backend=be), ValueError, "gamma"),
    ("gamma < 0", lambda be: nstep_returns(r3, t3, gamma=-0.1, n=1, backend=be), ValueError, "gamma"),
    ("gamma nan", lambda be: nstep_returns(r3, t3, gamma=float("nan"), n=1, backend=be), ValueError, "gamma"),
    ("gamma str", lambda be: nstep_returns(r3, t3, gamma="0.9", n=1, backend=be), TypeError, "gamma"),
    ("n = 0", lambda be: nstep_returns(r3, t3, gamma=0.9, n=0, backend=be), ValueError, "n"),
    ("n float", lambda be: nstep_returns(r3, t3, gamma=0.9, n=2.0, backend=be), TypeError, "n"),
    ("rewards 1-D", lambda be: nstep_returns(np.zeros(3), np.zeros(3, bool), gamma=0.9, n=1, backend=be),
     ValueError, "rewards"),
    ("terminated shape", lambda be: nstep_returns(r3, np.zeros((2, 2), bool), gamma=0.9, n=1, backend=be),
     ValueError, "terminated"),
    ("truncated shape", lambda be: nstep_returns(r3, t3, np.zeros((3, 3), bool), gamma=0.9, n=1, backend=be),
     ValueError, "truncated"),
    ("option_terminations shape",
     lambda be: nstep_returns(r3, t3, gamma=0.9, n=1, option_terminations=np.zeros(3, bool), backend=be),
     ValueError, "option_terminations"),
    ("next_values shape",
     lambda be: nstep_returns(r3, t3, gamma=0.9, n=1, next_values=np.zeros((4, 2), np.float32), backend=be),
     ValueError, "next_values"),
    ("epsilon > 1", lambda be: option_values(q3, 1.5, backend=be), ValueError, "epsilon"),
    ("q 1-D", lambda be: option_values(np.zeros(3), backend=be), ValueError, "q"),
    ("q no options", lambda be: option_values(np.zeros((3, 0)), backend=be), ValueError, "q"),
    ("option id too big", lambda be: option_bootstrap(q3, b3, np.array([0, 1, 2]), backend=be), IndexError, "options"),
    ("option id negative", lambda be: option_bootstrap(q3, b3, np.array([0, -1, 0]), backend=be), IndexError, "options"),
    ("float option ids", lambda be: option_bootstrap(q3, b3, np.zeros(3), backend=be), TypeError, "options"),
    ("options length", lambda be: option_bootstrap(q3, b3, np.zeros(2, np.int64), backend=be), ValueError, "options"),
    ("beta_next length", lambda be: option_bootstrap(q3, np.zeros(4), o3, backend=be), ValueError, "beta_next"),
    ("beta_next broadcastable", lambda be: option_bootstrap(q3, np.zeros(1), o3, backend=be), ValueError, "beta_next"),
    ("beta_next columns", lambda be: option_bootstrap(q3, np.zeros((3, 3)), o3, backend=be), ValueError, "beta_next"),
    ("q_next 1-D", lambda be: option_bootstrap(np.zeros(3), b3, o3, backend=be), ValueError, "q_next"),
    ("bootstrap epsilon", lambda be: option_bootstrap(q3, b3, o3, -0.5, backend=be), ValueError, "epsilon"),
]


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("call, exc, name", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_names_the_argument(call, exc, name, backend):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        call(backend)


@pytest.mark.parametrize("call", [
    lambda: nstep_returns(r3, t3, gamma=0.9, n=1, backend="gpu"),
    lambda: option_values(q3, backend="numpy"),
    lambda: option_bootstrap(q3, b3, o3, backend=""),
    lambda: option_values(q3, backend="cuda"),  # CPU inputs: the CUDA kernels cannot take them
])
def test_bad_backend_string(call):
    with pytest.raises(ValueError, match="backend"):
        call()


# ---- property test --------------------------------------------------------------------------
@st.composite
def rollouts(draw):
    T = draw(st.integers(1, 12))
    N = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rewards = np.array(draw(st.lists(st.floats(-100, 100, width=32), min_size=T * N, max_size=T * N)),
                       dtype=dtype).reshape(T, N)

    def flags(p_none):
        if draw(st.booleans()) and p_none:
            return None
        return np.array(draw(st.lists(st.booleans(), min_size=T * N, max_size=T * N))).reshape(T, N)

    nv = None
    if draw(st.booleans()):
        nv = np.array(draw(st.lists(st.floats(-100, 100, width=32), min_size=T * N, max_size=T * N)),
                      dtype=dtype).reshape(T, N)
    return dict(rewards=rewards, terminated=flags(False), truncated=flags(True),
                option_terminations=flags(True), next_values=nv), dtype


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(data=rollouts(), gamma=st.floats(0, 1), n=st.integers(1, 15), use_torch=st.booleans())
def test_property_nstep_kernel_matches_reference(data, gamma, n, use_torch):
    d, dtype = data
    if use_torch:
        d = as_torch(d)
    got = call_nstep(nstep_returns, d, gamma, n)
    want = call_nstep(nstep_returns_reference, d, gamma, n)
    scale = 1.0 + float(np.abs(to_np(d["rewards"])).sum())  # float32 sums of up to 15 rewards of size 100
    tol = dict(rtol=1e-5, atol=1e-6 * scale) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(to_np(got.returns), to_np(want.returns), **tol)
    np.testing.assert_allclose(to_np(got.discounts), to_np(want.discounts), **tol)
    np.testing.assert_array_equal(to_np(got.steps), to_np(want.steps))
    steps = to_np(got.steps)
    assert np.all((steps >= 1) & (steps <= n))
    assert isinstance(got.returns, torch.Tensor if use_torch else np.ndarray)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(B=st.integers(0, 6), K=st.integers(1, 5), eps=st.floats(0, 1), per_option=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_property_option_kernels_match_reference(B, K, eps, per_option, seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, K)) * 10
    beta = rng.random((B, K) if per_option else B)
    options = rng.integers(0, K, size=B)
    np.testing.assert_allclose(option_values(q, eps), option_values_reference(q, eps), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(option_bootstrap(q, beta, options, eps),
                               option_bootstrap_reference(q, beta, options, eps), rtol=1e-12, atol=1e-12)


def test_core_stub_lists_the_module():
    """_core.pyi names every public function, constant and Replay method the extension has."""
    import ast
    import os

    import hrlkit
    from hrlkit import _core

    stub = os.path.join(os.path.dirname(hrlkit.__file__), "_core.pyi")
    tree = ast.parse(open(stub).read())
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    funcs |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}  # constants (TREE_FAN)
    replay = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Replay")
    methods = {n.name for n in replay.body if isinstance(n, ast.FunctionDef)}
    assert funcs == {n for n in dir(_core) if not n.startswith("_") and n != "Replay"}
    assert methods >= {n for n in dir(_core.Replay) if not n.startswith("_")}


# ---- soft option-critic targets -------------------------------------------------------------
from hrlkit import soft_option_targets  # noqa: E402
from hrlkit.targets import soft_option_targets_reference  # noqa: E402


def _soft_inputs(B=4, K=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return dict(
        q_next=(rng.normal(size=(2, B)) * 5).astype(dtype),
        logp_next=rng.normal(size=B).astype(dtype),
        q_omega_next=(rng.normal(size=(B, K)) * 5).astype(dtype),
        beta_next=rng.random(B).astype(dtype),
        options=rng.integers(0, K, size=B),
        rewards=rng.normal(size=B).astype(dtype),
        discounts=np.where(rng.random(B) < 0.3, 0.0, 0.99).astype(dtype),
        alpha=rng.random(K).astype(dtype) + 0.05,
    )


def _soft_call(fn, d, **kw):
    return fn(d["q_next"], d["logp_next"], d["q_omega_next"], d["beta_next"], d["options"], d["rewards"],
              d["discounts"], d["alpha"], **kw)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_soft_option_targets_by_hand(backend):
    # one transition, K = 2, running option 1
    out = soft_option_targets(
        np.array([[3.0], [2.0]]), np.array([-1.0]), np.array([[1.0, 3.0]]), np.array([0.25]), np.array([1]),
        np.array([0.5]), np.array([0.9]), np.array([0.1, 0.2]), option_temperature=1.0, deliberation_cost=0.01,
        backend=backend,
    )
    q_option = 2.0 - 0.2 * -1.0  # twin-min minus alpha_1 log pi
    p = np.exp([1.0, 3.0]) / np.exp([1.0, 3.0]).sum()
    v = p @ np.array([1.0, 3.0])  # Boltzmann expectation over Q_Omega(s', .)
    assert out.q_option[0] == pytest.approx(q_option)
    assert out.value[0] == pytest.approx(v)
    assert out.target[0] == pytest.approx(0.5 + 0.9 * (0.75 * q_option + 0.25 * v))
    assert out.advantage[0] == pytest.approx(3.0 - v + 0.01)
    soft = soft_option_targets(
        np.array([[3.0], [2.0]]), np.array([-1.0]), np.array([[1.0, 3.0]]), np.array([0.25]), np.array([1]),
        np.array([0.5]), np.array([0.0]), np.array([0.1, 0.2]), option_temperature=0.5, mode="soft", backend=backend,
    )
    assert soft.value[0] == pytest.approx(0.5 * np.log(np.exp(2.0) + np.exp(6.0)))
    assert soft.target[0] == pytest.approx(0.5)  # terminal: no bootstrap
    greedy = soft_option_targets(
        np.array([[3.0], [2.0]]), np.array([-1.0]), np.array([[1.0, 3.0]]), np.array([0.25]), np.array([0]),
        np.array([0.5]), np.array([0.9]), np.array([0.1, 0.2]), option_temperature=0.0, backend=backend,
    )
    assert greedy.value[0] == pytest.approx(3.0)
    assert greedy.advantage[0] == pytest.approx(1.0 - 3.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_torch", [False, True])
@pytest.mark.parametrize("mode, tau", [("expected", 1.0), ("expected", 0.0), ("soft", 0.3), ("soft", 0.0)])
def test_soft_option_kernel_matches_reference(dtype, use_torch, mode, tau):
    d = _soft_inputs(B=64, K=5, seed=7, dtype=dtype)
    if use_torch:
        d = {k: torch.from_numpy(v) for k, v in d.items()}
    kw = dict(option_temperature=tau, deliberation_cost=0.02, mode=mode)
    got = _soft_call(soft_option_targets, d, **kw)
    ref = _soft_call(soft_option_targets_reference, d, **kw)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for g, r in zip(got, ref):
        assert isinstance(g, torch.Tensor if use_torch else np.ndarray)
        assert g.dtype == r.dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=tol, atol=tol)


def test_soft_option_targets_extreme_values_stay_finite():
    d = _soft_inputs(B=8, K=4, seed=1, dtype=np.float64)
    d["q_omega_next"] = d["q_omega_next"] * 1e4  # logsumexp/softmax must not overflow
    for mode in ("expected", "soft"):
        out = _soft_call(soft_option_targets, d, option_temperature=1e-3, mode=mode)
        assert all(np.isfinite(np.asarray(x)).all() for x in out)
        np.testing.assert_allclose(out.value, d["q_omega_next"].max(axis=1), rtol=1e-6)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(B=st.integers(0, 6), K=st.integers(1, 5), tau=st.floats(0, 5), soft=st.booleans(), xi=st.floats(-1, 1),
       seed=st.integers(0, 2**32 - 1))
def test_property_soft_option_kernel_matches_reference(B, K, tau, soft, xi, seed):
    d = _soft_inputs(B=B, K=K, seed=seed, dtype=np.float64)
    kw = dict(option_temperature=tau, deliberation_cost=xi, mode="soft" if soft else "expected")
    for g, r in zip(_soft_call(soft_option_targets, d, **kw), _soft_call(soft_option_targets_reference, d, **kw)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


def _soft_bad(field, value=None, **kw):
    def call(backend):
        d = _soft_inputs()
        if field is not None:
            d[field] = value
        extra = dict(kw)
        return _soft_call(soft_option_targets, d, option_temperature=extra.pop("tau", 1.0), backend=backend, **extra)
    return call


SOFT_BAD = [
    ("q_next one critic", _soft_bad("q_next", np.zeros((1, 4), np.float32)), ValueError, "q_next"),
    ("q_next 1-D", _soft_bad("q_next", np.zeros(4, np.float32)), ValueError, "q_next"),
    ("q_omega rows", _soft_bad("q_omega_next", np.zeros((3, 3), np.float32)), ValueError, "q_omega_next"),
    ("q_omega no options", _soft_bad("q_omega_next", np.zeros((4, 0), np.float32)), ValueError, "q_omega_next"),
    ("logp length", _soft_bad("logp_next", np.zeros(5, np.float32)), ValueError, "logp_next"),
    ("beta length", _soft_bad("beta_next", np.zeros((4, 3), np.float32)), ValueError, "beta_next"),
    ("rewards length", _soft_bad("rewards", np.zeros(3, np.float32)), ValueError, "rewards"),
    ("discounts length", _soft_bad("discounts", np.zeros(2, np.float32)), ValueError, "discounts"),
    ("alpha length", _soft_bad("alpha", np.zeros(2, np.float32)), ValueError, "alpha"),
    ("option id too big", _soft_bad("options", np.array([0, 1, 3, 0])), IndexError, "options"),
    ("option id negative", _soft_bad("options", np.array([0, -1, 0, 0])), IndexError, "options"),
    ("float options", _soft_bad("options", np.zeros(4)), TypeError, "options"),
    ("negative temperature", _soft_bad(None, tau=-1.0), ValueError, "option_temperature"),
    ("bad mode", _soft_bad(None, mode="max"), ValueError, "mode"),
    ("nan deliberation cost", _soft_bad(None, deliberation_cost=float("nan")), ValueError, "deliberation_cost"),
]


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("call, exc, name", [c[1:] for c in SOFT_BAD], ids=[c[0] for c in SOFT_BAD])
def test_soft_option_targets_bad_input_names_the_argument(call, exc, name, backend):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        call(backend)


# ---- DIAYN skill rewards --------------------------------------------------------------------
from hrlkit.targets import skill_rewards, skill_rewards_reference  # noqa: E402


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_skill_rewards_by_hand(backend):
    logits = np.array([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    out = skill_rewards(logits, np.array([3, 0, 1]), backend=backend)
    # uniform discriminator: log(1/4) - log(1/4) = 0, and every skill ties for most likely
    assert out.reward[0] == pytest.approx(0.0)
    p0 = np.exp(2.0) / (np.exp(2.0) + 3)
    assert out.reward[1] == pytest.approx(np.log(p0) + np.log(4))
    assert out.reward[2] == pytest.approx(np.log(1 / (np.exp(2.0) + 3)) + np.log(4))
    assert list(out.correct) == [True, True, False]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_torch", [False, True])
def test_skill_rewards_kernel_matches_reference(dtype, use_torch):
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(257, 10)) * 30).astype(dtype)  # large logits: needs the max shift
    skills = rng.integers(0, 10, size=257)
    if use_torch:
        logits, skills = torch.from_numpy(logits), torch.from_numpy(skills)
    got, ref = skill_rewards(logits, skills), skill_rewards_reference(logits, skills)
    assert isinstance(got.reward, torch.Tensor if use_torch else np.ndarray)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.asarray(got.reward), np.asarray(ref.reward), rtol=tol, atol=tol)
    np.testing.assert_array_equal(np.asarray(got.correct), np.asarray(ref.correct))
    assert np.all(np.isfinite(np.asarray(got.reward)))


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("logits, skills, exc, name", [
    (np.zeros((3, 4)), np.array([0, 4, 0]), IndexError, "skills"),
    (np.zeros((3, 4)), np.array([0, -1, 0]), IndexError, "skills"),
    (np.zeros((3, 4)), np.zeros(3), TypeError, "skills"),
    (np.zeros((3, 4)), np.zeros(2, np.int64), ValueError, "skills"),
    (np.zeros(3), np.zeros(3, np.int64), ValueError, "logits"),
    (np.zeros((3, 0)), np.zeros(3, np.int64), ValueError, "logits"),
], ids=["too big", "negative", "float ids", "length", "1-D logits", "no skills"])
def test_skill_rewards_bad_input_names_the_argument(logits, skills, exc, name, backend):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        skill_rewards(logits, skills, backend=backend)


# ---- FeUdal Networks terms ------------------------------------------------------------------
from hrlkit.targets import feudal_terms, feudal_terms_reference  # noqa: E402

_S = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [3.0, 1.0]])[:, None, :]  # [c + T = 4, N = 1, D = 2]
_G = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])[:, None, :]


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_feudal_terms_by_hand(backend):
    no_starts = np.zeros((4, 1), bool)
    out = feudal_terms(_S, _G, no_starts, c=2, backend=backend)
    # t = 0 (row 2): cos((0,1), g1=(0,1)) = 1 and cos((1,1), g0=(1,0)) = 1/sqrt(2), over c = 2
    # t = 1 (row 3): cos((2,0), g2=(1,0)) = 1 and cos((2,1), g1=(0,1)) = 1/sqrt(5)
    np.testing.assert_allclose(out.intrinsic[:, 0], [(1 + 2 ** -0.5) / 2, (1 + 5 ** -0.5) / 2])
    # the manager's direction reaches c = 2 rows ahead at most, clipped at the array's end
    np.testing.assert_allclose(out.direction[:, 0], [[2.0, 0.0], [0.0, 0.0]])
    assert out.horizon[:, 0].tolist() == [1, 0]
    # an episode starting at row 2: no look-back before it
    starts = no_starts.copy()
    starts[2] = True
    out = feudal_terms(_S, _G, starts, c=2, backend=backend)
    np.testing.assert_allclose(out.intrinsic[:, 0], [0.0, 0.5])
    # an episode starting at row 3: the direction of row 2 stops before it
    starts = no_starts.copy()
    starts[3] = True
    out = feudal_terms(_S, _G, starts, c=2, backend=backend)
    assert out.horizon[:, 0].tolist() == [0, 0] and out.intrinsic[1, 0] == 0.0
    # zero-norm goals and zero-norm differences give 0, not nan
    out = feudal_terms(np.zeros((4, 1, 2)), np.zeros((4, 1, 2)), no_starts, c=2, backend=backend)
    assert np.all(out.intrinsic == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_torch", [False, True])
@pytest.mark.parametrize("c", [1, 3, 10])
def test_feudal_kernel_matches_reference(dtype, use_torch, c):
    rng = np.random.default_rng(c)
    L, N, D = c + 40, 5, 4
    states = rng.normal(size=(L, N, D)).astype(dtype)
    goals = rng.normal(size=(L, N, D)).astype(dtype)
    starts = rng.random((L, N)) < 0.08
    states[7, 2] = states[6, 2]  # a zero-norm difference
    goals[9, 1] = 0.0  # a zero goal
    if use_torch:
        states, goals, starts = (torch.from_numpy(x) for x in (states, goals, starts))
    got = feudal_terms(states, goals, starts, c=c)
    ref = feudal_terms_reference(states, goals, starts, c=c)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for g, r in zip(got, ref):
        assert isinstance(g, torch.Tensor if use_torch else np.ndarray)
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=tol, atol=tol)
    assert np.all(np.asarray(got.horizon) <= c) and np.all(np.abs(np.asarray(got.intrinsic)) <= 1 + 1e-6)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(T=st.integers(1, 12), N=st.integers(1, 3), D=st.integers(1, 4), c=st.integers(1, 6), p=st.floats(0, 1),
       seed=st.integers(0, 2**32 - 1))
def test_property_feudal_kernel_matches_reference(T, N, D, c, p, seed):
    rng = np.random.default_rng(seed)
    states, goals = rng.normal(size=(c + T, N, D)), rng.normal(size=(c + T, N, D))
    starts = rng.random((c + T, N)) < p
    for g, r in zip(feudal_terms(states, goals, starts, c=c), feudal_terms_reference(states, goals, starts, c=c)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("kw, exc, name", [
    (dict(c=0), ValueError, "c"),
    (dict(c=4), ValueError, "states"),  # needs more than c rows
    (dict(c=1.5), TypeError, "c"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(goals=np.zeros((4, 1, 3))), ValueError, "goals"),
    (dict(starts=np.zeros((3, 1), bool)), ValueError, "starts"),
    (dict(states=np.zeros((4, 2))), ValueError, "states"),
], ids=["c 0", "too few rows", "float c", "negative eps", "goal shape", "starts shape", "2-D states"])
def test_feudal_terms_bad_input_names_the_argument(kw, exc, name, backend):
    args = dict(states=_S, goals=_G, starts=np.zeros((4, 1), bool), c=2, backend=backend)
    args.update(kw)
    with pytest.raises(exc, match=rf"\b{name}\b"):
        feudal_terms(args.pop("states"), args.pop("goals"), args.pop("starts"), **args)
