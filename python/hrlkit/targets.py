"""SMDP / n-step returns and option-critic bootstrap targets.

Each function takes numpy arrays or torch tensors and returns the same kind. CPU inputs go to the
C++ kernels (zero-copy); CUDA tensors go to the CUDA twins of those kernels (``hrlkit._cuda``,
where it was built; else to the torch reference) on torch's current stream, without a host
sync; ``backend="torch"`` forces the torch reference next to each kernel, which the tests
compare against both kernels. Targets carry no gradient.

On CUDA, ids (``options``, ``skills``) are range-checked on the device, which costs a host sync;
``validate=False`` skips that check (out-of-range ids then give NaN rows) for training loops
whose ids are their own.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _core, _cuda_ops
from ._validate import check_float, check_int, describe, dtype_kind, to_numpy

__all__ = [
    "NStepReturns",
    "nstep_returns",
    "nstep_returns_reference",
    "option_values",
    "option_values_reference",
    "option_bootstrap",
    "option_bootstrap_reference",
    "SoftOptionTargets",
    "soft_option_targets",
    "soft_option_targets_reference",
    "SkillRewards",
    "skill_rewards",
    "skill_rewards_reference",
    "FeudalTerms",
    "feudal_terms",
    "feudal_terms_reference",
]


class NStepReturns(NamedTuple):
    returns: Any    # [T, N] sum_{i<k} gamma^i r_{t+i} (+ discounts * next_values[t+k-1] when given)
    discounts: Any  # [T, N] gamma^k, or 0 where the window ended on a terminal step
    steps: Any      # [T, N] k, the number of rewards summed (int64)


# ---- helpers --------------------------------------------------------------------------------
def _is_torch(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "device")


def _route(backend: str, *xs: Any) -> str:
    """'cpp', 'cuda' or 'torch': where a call with these inputs runs."""
    if backend not in ("auto", "cpp", "cuda", "torch"):
        raise ValueError(f"backend: expected 'auto', 'cpp', 'cuda' or 'torch', got {backend!r}")
    on_gpu = any(_is_torch(x) and x.device.type != "cpu" for x in xs if x is not None)
    if backend == "cpp" and on_gpu:
        raise ValueError("backend: 'cpp' needs CPU inputs, got CUDA tensors (use 'auto', 'cuda' or 'torch')")
    if backend == "cuda" and not (on_gpu and _cuda_ops.available()):
        why = "CUDA tensors" if not on_gpu else "hrlkit._cuda (built where CMake finds nvcc) and a GPU"
        raise ValueError(f"backend: 'cuda' needs {why}")
    if backend == "torch":
        return "torch"
    if on_gpu:
        return "cuda" if _cuda_ops.available() else "torch"
    return "cpp"


def _check_ids(name: str, ids: Any, count: int, validate: bool = True) -> None:
    """Range check of option or skill ids before anything is computed (for CUDA tensors, one host
    sync, which ``validate=False`` skips)."""
    if not validate:
        return
    import torch

    o = torch.as_tensor(ids)
    if o.numel() and bool(((o < 0) | (o >= count)).any()):
        raise IndexError(f"{name}: expected ids in [0, {count}), got {o.min().item()}..{o.max().item()}")


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _check(name: str, x: Any, *, kinds: str, what: str, shape: tuple | None = None, ndim: int | None = None) -> None:
    if dtype_kind(x) not in kinds:
        raise TypeError(f"{name}: expected {what}, got {describe(x)}")
    got = _shape(x)
    if shape is not None and got != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {got}")
    if ndim is not None and len(got) != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {got}")


def _check_nstep(rewards, terminated, truncated, option_terminations, next_values) -> None:
    _check("rewards", rewards, kinds="fiub", what="real numbers", ndim=2)
    shape = _shape(rewards)
    for name, flag in (("terminated", terminated), ("truncated", truncated), ("option_terminations", option_terminations)):
        if flag is not None:
            _check(name, flag, kinds="biuf", what="booleans", shape=shape)
    if next_values is not None:
        _check("next_values", next_values, kinds="fiub", what="real numbers", shape=shape)


def _check_lam(lam: Any, next_values: Any) -> float:
    lam = check_float("lam", lam, low=0.0, high=1.0)
    if lam != 1.0 and next_values is None:
        raise ValueError(f"lam: a lambda-return (lam < 1, got {lam}) needs next_values, the values it mixes in; got none")
    return lam


def _check_q(name: str, q: Any) -> None:
    _check(name, q, kinds="fiub", what="real numbers", ndim=2)
    if _shape(q)[1] < 1:
        raise ValueError(f"{name}: expected shape (B, K) with K >= 1, got {_shape(q)}")


def _check_bootstrap(q_next, beta_next, options) -> None:
    _check_q("q_next", q_next)
    B, K = _shape(q_next)
    _check("beta_next", beta_next, kinds="fiub", what="real numbers")
    if _shape(beta_next) not in ((B,), (B, K)):
        raise ValueError(f"beta_next: expected shape ({B},) or ({B}, {K}), got {_shape(beta_next)}")
    _check("options", options, kinds="iu", what="integer option ids", shape=(B,))


def _flags(x: Any) -> np.ndarray:
    return np.ascontiguousarray(to_numpy("flag", x) != 0).view(np.uint8)


def _like(template: Any, arr: np.ndarray) -> Any:
    if _is_torch(template):
        import torch

        return torch.from_numpy(arr)
    return arr


def _kernel_dtype(*arrays: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if any(a.dtype == np.float64 for a in arrays) else np.dtype(np.float32)


# ---- n-step / SMDP returns ------------------------------------------------------------------
def nstep_returns(
    rewards: Any,
    terminated: Any,
    truncated: Any = None,
    *,
    gamma: float,
    n: int,
    option_terminations: Any = None,
    next_values: Any = None,
    lam: float = 1.0,
    backend: str = "auto",
) -> NStepReturns:
    """Discounted k-step returns over a [T, N] rollout (time first, one column per env).

    The window of step t sums up to ``n`` rewards and stops after a step that ends the episode
    (``terminated`` or ``truncated``), after a step whose option terminated
    (``option_terminations``, for SMDP returns), or at the end of the rollout. ``discounts`` is
    gamma^k, or 0 where the window ended on a terminal step. With ``next_values`` (the value of
    s_{i+1} for each step i; for a truncated step, the value of its final observation),
    ``returns`` includes the bootstrap ``discounts * next_values[t+k-1]``.

    ``lam`` < 1 (needs ``next_values``) makes each window's return the lambda-return
    G_t = r_t + gamma ((1 - lam) V(s_{t+1}) + lam G_{t+1}), the window's last step bootstrapping
    fully (GAE(lambda)'s returns: G_t - V(s_t) is its advantage); ``discounts`` is then the weight
    gamma^k lam^(k-1) of that last bootstrap. ``lam`` = 1 (the default) is the n-step return.
    """
    gamma = check_float("gamma", gamma, low=0.0, high=1.0)
    n = check_int("n", n, minimum=1)
    lam = _check_lam(lam, next_values)
    route = _route(backend, rewards, terminated, truncated, option_terminations, next_values)
    if route == "torch":
        return nstep_returns_reference(
            rewards, terminated, truncated, gamma=gamma, n=n, option_terminations=option_terminations,
            next_values=next_values, lam=lam,
        )
    _check_nstep(rewards, terminated, truncated, option_terminations, next_values)
    if route == "cuda":
        return NStepReturns(*_cuda_ops.nstep_returns(rewards, terminated, truncated, option_terminations, next_values, gamma, n,
                                                     lam))
    r = to_numpy("rewards", rewards)
    term = _flags(terminated)
    trunc = None if truncated is None else _flags(truncated)
    opt_end = None if option_terminations is None else _flags(option_terminations)
    nv = None if next_values is None else to_numpy("next_values", next_values)
    dt = _kernel_dtype(r, *([nv] if nv is not None else []))
    r = np.ascontiguousarray(r, dtype=dt)
    if nv is not None:
        nv = np.ascontiguousarray(nv, dtype=dt)
    kernel = _core.nstep_returns_f64 if dt == np.float64 else _core.nstep_returns_f32
    ret, disc, steps = kernel(r, term, trunc, opt_end, nv, gamma, n, lam)
    return NStepReturns(_like(rewards, ret), _like(rewards, disc), _like(rewards, steps))


def nstep_returns_reference(
    rewards: Any,
    terminated: Any,
    truncated: Any = None,
    *,
    gamma: float,
    n: int,
    option_terminations: Any = None,
    next_values: Any = None,
    lam: float = 1.0,
) -> NStepReturns:
    """Torch reference of :func:`nstep_returns` (vectorized over [T, N], a loop over k < n)."""
    import torch

    gamma = check_float("gamma", gamma, low=0.0, high=1.0)
    n = check_int("n", n, minimum=1)
    lam = _check_lam(lam, next_values)
    _check_nstep(rewards, terminated, truncated, option_terminations, next_values)
    as_numpy = not _is_torch(rewards)
    r = torch.as_tensor(rewards).detach()
    if not r.is_floating_point():
        r = r.float()
    T, N = r.shape
    dev = r.device

    def flag(x):
        return torch.as_tensor(x, device=dev).detach() != 0

    end = flag(terminated)
    term = end.clone()
    if truncated is not None:
        end = end | flag(truncated)
    if option_terminations is not None:
        end = end | flag(option_terminations)
    acc_dtype = torch.float64
    nv = None if next_values is None else torch.as_tensor(next_values, device=dev).detach().to(acc_dtype)
    g = torch.zeros(T, N, dtype=acc_dtype, device=dev)
    disc = torch.ones(T, N, dtype=acc_dtype, device=dev)
    steps = torch.zeros(T, N, dtype=torch.int64, device=dev)
    alive = torch.ones(T, N, dtype=torch.bool, device=dev)
    t_idx = torch.arange(T, device=dev).unsqueeze(1)
    for j in range(min(n, T)):
        src = (t_idx + j).clamp(max=T - 1).expand(T, N)
        valid = alive & (t_idx + j < T)
        r_j = torch.gather(r.to(acc_dtype), 0, src)
        g = torch.where(valid, g + disc * r_j, g)
        steps = steps + valid.long()
        disc = torch.where(valid, disc * gamma, disc)
        term_j = torch.gather(term, 0, src)
        disc = torch.where(valid & term_j, torch.zeros_like(disc), disc)
        alive = valid & ~torch.gather(end, 0, src) & (t_idx + j + 1 < T) & (j + 1 < n)
        if lam != 1.0:  # the window goes on past step j: (1 - lam) of its next state's value, lam of the rest
            g = torch.where(alive, g + disc * (1.0 - lam) * torch.gather(nv, 0, src), g)
            disc = torch.where(alive, disc * lam, disc)
    if nv is not None:
        boot = torch.gather(nv, 0, (t_idx + steps - 1).clamp(min=0))
        g = torch.where(disc != 0, g + disc * boot, g)
    out_dtype = torch.float64 if (r.dtype == torch.float64 or (next_values is not None and torch.as_tensor(next_values).dtype == torch.float64)) else torch.float32
    out = NStepReturns(g.to(out_dtype), disc.to(out_dtype), steps)
    if as_numpy:
        return NStepReturns(*(x.cpu().numpy() for x in out))
    return out


# ---- option values and the option-critic bootstrap ------------------------------------------
def option_values(q: Any, epsilon: float = 0.0, *, backend: str = "auto") -> Any:
    """V_Omega(s) = (1 - epsilon) max_w Q(s, w) + epsilon mean_w Q(s, w), for q of shape [B, K]."""
    epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
    route = _route(backend, q)
    if route == "torch":
        return option_values_reference(q, epsilon)
    _check_q("q", q)
    if route == "cuda":
        return _cuda_ops.option_values(q, epsilon)
    a = to_numpy("q", q)
    dt = _kernel_dtype(a)
    kernel = _core.option_values_f64 if dt == np.float64 else _core.option_values_f32
    return _like(q, kernel(np.ascontiguousarray(a, dtype=dt), epsilon))


def option_values_reference(q: Any, epsilon: float = 0.0) -> Any:
    import torch

    epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
    _check_q("q", q)
    t = torch.as_tensor(q).detach()
    v = (1.0 - epsilon) * t.max(dim=1).values + epsilon * t.mean(dim=1)
    return v if _is_torch(q) else v.cpu().numpy()


def option_bootstrap(
    q_next: Any, beta_next: Any, options: Any, epsilon: float = 0.0, *, backend: str = "auto", validate: bool = True
) -> Any:
    """U(s', w) = (1 - beta(s', w)) Q(s', w) + beta(s', w) V_Omega(s') for the running option w.

    q_next: [B, K] option values at s'; beta_next: [B] (the running option's termination
    probability at s') or [B, K] (all options'; column w is used); options: [B] int ids.
    """
    epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
    route = _route(backend, q_next, beta_next, options)
    if route == "torch":
        return option_bootstrap_reference(q_next, beta_next, options, epsilon)
    _check_bootstrap(q_next, beta_next, options)
    if route == "cuda":
        _check_ids("options", options, _shape(q_next)[1], validate)
        return _cuda_ops.option_bootstrap(q_next, beta_next, options, epsilon)
    q, b, o = to_numpy("q_next", q_next), to_numpy("beta_next", beta_next), to_numpy("options", options)
    dt = _kernel_dtype(q, b)
    kernel = _core.option_bootstrap_f64 if dt == np.float64 else _core.option_bootstrap_f32
    out = kernel(
        np.ascontiguousarray(q, dtype=dt),
        np.ascontiguousarray(b, dtype=dt),
        np.ascontiguousarray(o, dtype=np.int64),
        epsilon,
    )
    return _like(q_next, out)


def option_bootstrap_reference(q_next: Any, beta_next: Any, options: Any, epsilon: float = 0.0) -> Any:
    import torch

    epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
    _check_bootstrap(q_next, beta_next, options)
    q = torch.as_tensor(q_next).detach()
    if not q.is_floating_point():
        q = q.float()
    b = torch.as_tensor(beta_next, device=q.device).detach().to(q.dtype)
    o = torch.as_tensor(options, device=q.device).long()
    _check_ids("options", o, q.shape[1])
    if b.ndim == 2:
        b = b.gather(1, o[:, None]).squeeze(1)
    q_w = q.gather(1, o[:, None]).squeeze(1)
    u = (1.0 - b) * q_w + b * option_values_reference(q, epsilon)
    return u if _is_torch(q_next) else u.cpu().numpy()


# ---- soft option-critic targets ------------------------------------------------------------
class SoftOptionTargets(NamedTuple):
    q_option: Any   # [B] Q_Omega(s', w) = min(q1, q2)(s', a', w) - alpha_w log pi_w(a' | s'), a' ~ pi_w(s')
    value: Any      # [B] V(s') of the Boltzmann option policy over q_omega_next
    target: Any     # [B] r + disc ((1 - beta_w(s')) Q_Omega(s', w) + beta_w(s') V(s'))
    advantage: Any  # [B] q_omega_next[w] - V(s') + xi, the termination advantage of w at s'


def _check_soft(q_next, logp_next, q_omega_next, beta_next, options, rewards, discounts, alpha) -> None:
    _check("q_next", q_next, kinds="fiub", what="real numbers", ndim=2)
    if _shape(q_next)[0] != 2:
        raise ValueError(f"q_next: expected shape (2, B) (the twin critics), got {_shape(q_next)}")
    B = _shape(q_next)[1]
    _check("q_omega_next", q_omega_next, kinds="fiub", what="real numbers", ndim=2)
    if _shape(q_omega_next)[0] != B or _shape(q_omega_next)[1] < 1:
        raise ValueError(f"q_omega_next: expected shape ({B}, K) with K >= 1, got {_shape(q_omega_next)}")
    K = _shape(q_omega_next)[1]
    for name, x in (("logp_next", logp_next), ("beta_next", beta_next), ("rewards", rewards), ("discounts", discounts)):
        _check(name, x, kinds="fiub", what="real numbers", shape=(B,))
    _check("options", options, kinds="iu", what="integer option ids", shape=(B,))
    _check("alpha", alpha, kinds="fiub", what="real numbers", shape=(K,))


def _soft_args(option_temperature: float, deliberation_cost: float, mode: str) -> tuple[float, float]:
    if mode not in ("expected", "soft"):
        raise ValueError(f"mode: expected 'expected' or 'soft', got {mode!r}")
    return (check_float("option_temperature", option_temperature, low=0.0),
            check_float("deliberation_cost", deliberation_cost))


def soft_option_targets(
    q_next: Any,
    logp_next: Any,
    q_omega_next: Any,
    beta_next: Any,
    options: Any,
    rewards: Any,
    discounts: Any,
    alpha: Any,
    *,
    option_temperature: float,
    deliberation_cost: float = 0.0,
    mode: str = "expected",
    backend: str = "auto",
    validate: bool = True,
) -> SoftOptionTargets:
    """Soft Option-Critic targets for B transitions in one kernel call: the twin-min, the entropy
    term and the beta-mixed soft bootstrap.

    Each transition b trains one option w = options[b]. q_next [2, B]: both *target* critics'
    head w at (s', a'), a' ~ pi_w(s'); logp_next [B]: log pi_w(a' | s'); q_omega_next [B, K]: the
    option values Q_Omega(s', .) (an option-value network); beta_next [B]: beta_w(s'); rewards
    [B]; discounts [B]: gamma^k, or 0 after a terminal step; alpha [K]: each option's entropy
    temperature. With V(s') the value of the Boltzmann option policy over q_omega_next at
    ``option_temperature`` (``mode="expected"``: sum_w pi(w|s') Q_Omega(s', w); ``"soft"``:
    tau logsumexp(Q_Omega / tau), which adds the option choice's entropy; temperature 0: max):

        q_option  = min(q1, q2) - alpha_w logp_next
        target    = r + disc ((1 - beta_w(s')) q_option + beta_w(s') V(s'))
        advantage = Q_Omega(s', w) - V(s') + deliberation_cost
    """
    tau, xi = _soft_args(option_temperature, deliberation_cost, mode)
    inputs = (q_next, logp_next, q_omega_next, beta_next, options, rewards, discounts, alpha)
    route = _route(backend, *inputs)
    if route == "torch":
        return soft_option_targets_reference(*inputs, option_temperature=tau, deliberation_cost=xi, mode=mode)
    _check_soft(*inputs)
    if route == "cuda":
        _check_ids("options", options, _shape(q_omega_next)[1], validate)
        return SoftOptionTargets(*_cuda_ops.soft_option_targets(*inputs, tau, mode == "soft", xi))
    names = ("q_next", "logp_next", "q_omega_next", "beta_next", "options", "rewards", "discounts", "alpha")
    arrays = {n: to_numpy(n, x) for n, x in zip(names, inputs)}
    opts = np.ascontiguousarray(arrays.pop("options"), dtype=np.int64)
    dt = _kernel_dtype(*arrays.values())
    a = {n: np.ascontiguousarray(x, dtype=dt) for n, x in arrays.items()}
    kernel = _core.soft_option_targets_f64 if dt == np.float64 else _core.soft_option_targets_f32
    out = kernel(a["q_next"], a["logp_next"], a["q_omega_next"], a["beta_next"], opts, a["rewards"], a["discounts"],
                 a["alpha"], tau, mode == "soft", xi)
    return SoftOptionTargets(*(_like(q_next, x) for x in out))


def soft_option_targets_reference(
    q_next: Any,
    logp_next: Any,
    q_omega_next: Any,
    beta_next: Any,
    options: Any,
    rewards: Any,
    discounts: Any,
    alpha: Any,
    *,
    option_temperature: float,
    deliberation_cost: float = 0.0,
    mode: str = "expected",
) -> SoftOptionTargets:
    """Torch reference of :func:`soft_option_targets` (also the path for CUDA tensors where hrlkit._cuda
    is not built)."""
    import torch

    tau, xi = _soft_args(option_temperature, deliberation_cost, mode)
    _check_soft(q_next, logp_next, q_omega_next, beta_next, options, rewards, discounts, alpha)
    q = torch.as_tensor(q_next).detach()
    if not q.is_floating_point():
        q = q.float()
    dev, dt = q.device, q.dtype

    def f(x):
        return torch.as_tensor(x, device=dev).detach().to(dt)

    qo_all = f(q_omega_next)
    K = qo_all.shape[1]
    o = torch.as_tensor(options, device=dev).long()
    _check_ids("options", o, K)
    beta = f(beta_next)
    q_option = torch.minimum(q[0], q[1]) - f(alpha)[o] * f(logp_next)
    top = qo_all.max(dim=1).values
    if tau == 0.0:
        value = top
    else:  # shifted by the max, so a tiny temperature cannot overflow
        z = (qo_all - top[:, None]) / tau
        if mode == "soft":
            value = top + tau * torch.logsumexp(z, dim=1)
        else:
            value = (torch.softmax(z, dim=1) * qo_all).sum(dim=1)
    target = f(rewards) + f(discounts) * ((1.0 - beta) * q_option + beta * value)
    advantage = qo_all.gather(1, o[:, None]).squeeze(1) - value + xi
    out = SoftOptionTargets(q_option, value, target, advantage)
    if _is_torch(q_next):
        return out
    return SoftOptionTargets(*(x.cpu().numpy() for x in out))


# ---- DIAYN skill rewards -------------------------------------------------------------------
class SkillRewards(NamedTuple):
    reward: Any   # [B] log q(z | s') - log p(z), p uniform over the Z skills
    correct: Any  # [B] bool: z is the discriminator's most likely skill


def _check_skills(logits: Any, skills: Any) -> None:
    _check("logits", logits, kinds="fiub", what="real numbers", ndim=2)
    B, Z = _shape(logits)
    if Z < 1:
        raise ValueError(f"logits: expected shape (B, Z) with Z >= 1, got {_shape(logits)}")
    _check("skills", skills, kinds="iu", what="integer skill ids", shape=(B,))


def skill_rewards(logits: Any, skills: Any, *, backend: str = "auto", validate: bool = True) -> SkillRewards:
    """DIAYN's intrinsic reward for a batch in one kernel call: log_softmax(logits)[z] + log Z,
    i.e. log q(z | s') - log p(z) with the uniform, fixed prior; logits [B, Z] are the
    discriminator's at the next states, skills [B] the skills that acted. Also returns whether
    each skill is the discriminator's most likely one (its accuracy on the batch)."""
    route = _route(backend, logits, skills)
    if route == "torch":
        return skill_rewards_reference(logits, skills)
    _check_skills(logits, skills)
    if route == "cuda":
        _check_ids("skills", skills, _shape(logits)[1], validate)
        return SkillRewards(*_cuda_ops.skill_rewards(logits, skills))
    a = to_numpy("logits", logits)
    dt = _kernel_dtype(a)
    kernel = _core.skill_rewards_f64 if dt == np.float64 else _core.skill_rewards_f32
    reward, correct = kernel(np.ascontiguousarray(a, dtype=dt), np.ascontiguousarray(to_numpy("skills", skills), dtype=np.int64))
    return SkillRewards(_like(logits, reward), _like(logits, correct))


def skill_rewards_reference(logits: Any, skills: Any) -> SkillRewards:
    """Torch reference of :func:`skill_rewards` (also the path for CUDA tensors where hrlkit._cuda
    is not built)."""
    import math

    import torch

    _check_skills(logits, skills)
    x = torch.as_tensor(logits).detach()
    if not x.is_floating_point():
        x = x.float()
    z = torch.as_tensor(skills, device=x.device).long()
    Z = x.shape[1]
    _check_ids("skills", z, Z)
    own = x.gather(1, z[:, None]).squeeze(1)
    reward = torch.log_softmax(x, dim=1).gather(1, z[:, None]).squeeze(1) + math.log(Z)
    correct = own >= x.max(dim=1).values
    out = SkillRewards(reward, correct)
    return out if _is_torch(logits) else SkillRewards(*(t.cpu().numpy() for t in out))


# ---- FeUdal Networks: worker reward and manager directions ----------------------------------
class FeudalTerms(NamedTuple):
    intrinsic: Any  # [T, N] (1/c) sum_{i=1..c} cos(s_t - s_{t-i}, g_{t-i}), within the episode
    direction: Any  # [T, N, D] s_e - s_t, e = t + horizon (the manager's c-step direction)
    horizon: Any    # [T, N] e - t: c, or fewer where the episode or the array ends first (int64)


def _check_feudal(states: Any, goals: Any, starts: Any, c: int) -> None:
    _check("states", states, kinds="fiub", what="real numbers", ndim=3)
    L, N, D = _shape(states)
    if L <= c:
        raise ValueError(f"states: expected more than c = {c} rows (c of history, then the rollout), got {L}")
    _check("goals", goals, kinds="fiub", what="real numbers", shape=(L, N, D))
    _check("starts", starts, kinds="biuf", what="booleans", shape=(L, N))


def feudal_terms(states: Any, goals: Any, starts: Any, *, c: int, eps: float = 1e-8, backend: str = "auto") -> FeudalTerms:
    """FuN's worker intrinsic reward and the manager's c-step state directions for a whole
    rollout in one kernel call.

    states, goals: [c + T, N, D], the previous rollout's last c steps (history) followed by this
    rollout's T steps; starts: [c + T, N] bool, True at the first step of an episode (nothing
    looks across it; also mark the first step of training so the zero history is ignored).
    For rollout step t: ``intrinsic`` = (1/c) sum_{i=1..c} cos(s_t - s_{t-i}, g_{t-i}) over the
    i that stay in the episode; ``direction`` = s_{t+k} - s_t with k = ``horizon`` = c, or
    fewer at the end of the episode or of the array (the manager's transition gradient uses
    cos(direction, g_t) with the direction held constant). A cosine with a difference or goal of
    norm <= eps is 0.
    """
    c = check_int("c", c, minimum=1)
    eps = check_float("eps", eps, low=0.0)
    route = _route(backend, states, goals, starts)
    if route == "torch":
        return feudal_terms_reference(states, goals, starts, c=c, eps=eps)
    _check_feudal(states, goals, starts, c)
    if route == "cuda":
        return FeudalTerms(*_cuda_ops.feudal_terms(states, goals, starts, c, eps))
    s, g = to_numpy("states", states), to_numpy("goals", goals)
    dt = _kernel_dtype(s, g)
    kernel = _core.feudal_terms_f64 if dt == np.float64 else _core.feudal_terms_f32
    out = kernel(np.ascontiguousarray(s, dtype=dt), np.ascontiguousarray(g, dtype=dt), _flags(starts), c, eps)
    return FeudalTerms(*(_like(states, x) for x in out))


def feudal_terms_reference(states: Any, goals: Any, starts: Any, *, c: int, eps: float = 1e-8) -> FeudalTerms:
    """Torch reference of :func:`feudal_terms` (vectorized over [T, N], loops over i <= c)."""
    import torch

    c = check_int("c", c, minimum=1)
    eps = check_float("eps", eps, low=0.0)
    _check_feudal(states, goals, starts, c)
    s = torch.as_tensor(states).detach()
    if not s.is_floating_point():
        s = s.float()
    dev = s.device
    g = torch.as_tensor(goals, device=dev).detach().to(s.dtype)
    st = torch.as_tensor(starts, device=dev).detach() != 0
    L, N, D = s.shape
    T = L - c
    acc = torch.float64
    s64, g64 = s.to(acc), g.to(acc)
    idx = torch.arange(L, device=dev)[:, None].expand(L, N)
    # the latest episode start at or before each row (row 0 counts as one)
    marks = torch.where(st, idx, torch.zeros_like(idx))
    last_start = torch.cummax(marks, dim=0).values
    j = torch.arange(c, L, device=dev)[:, None].expand(T, N)

    def cos(u, v):
        nu, nv = u.norm(dim=-1), v.norm(dim=-1)
        ok = (nu > eps) & (nv > eps)
        return torch.where(ok, (u * v).sum(-1) / (nu * nv).clamp_min(1e-300), torch.zeros_like(nu))

    total = torch.zeros(T, N, dtype=acc, device=dev)
    for i in range(1, c + 1):
        valid = (j - i) >= last_start[c:]
        prev = (j - i).clamp(min=0)
        s_prev = torch.gather(s64, 0, prev[..., None].expand(T, N, D))
        g_prev = torch.gather(g64, 0, prev[..., None].expand(T, N, D))
        total = total + torch.where(valid, cos(s64[c:] - s_prev, g_prev), torch.zeros_like(total))
    # the furthest row e <= j + c before the next episode start (or the end of the array)
    e = j.clone()
    alive = torch.ones(T, N, dtype=torch.bool, device=dev)
    for k in range(1, c + 1):
        nxt = j + k
        inside = nxt < L
        nxt_c = nxt.clamp(max=L - 1)
        alive = alive & inside & ~torch.gather(st, 0, nxt_c)
        e = torch.where(alive, nxt_c, e)
    s_e = torch.gather(s64, 0, e[..., None].expand(T, N, D))
    out = FeudalTerms((total / c).to(s.dtype), (s_e - s64[c:]).to(s.dtype), e - j)
    if _is_torch(states):
        return out
    return FeudalTerms(*(x.cpu().numpy() for x in out))
