"""Calls into ``hrlkit._cuda`` (the CUDA twins of the core kernels) for CUDA tensors.

The extension takes raw device pointers and torch's current stream, so it never links libtorch.
Inputs reaching these functions were validated by the public wrappers (``hrlkit.targets``);
here they are made contiguous on one device in the kernel's dtype and the outputs allocated.
Nothing here synchronizes with the host.
"""
from __future__ import annotations

from typing import Any

try:  # built only where CMake found a CUDA compiler
    from . import _cuda
except ImportError:  # pragma: no cover - depends on the build machine
    _cuda = None

__all__ = ["available", "stream", "kernel_dtype"]


def available() -> bool:
    """True when the CUDA module was built and torch sees a GPU."""
    if _cuda is None:
        return False
    import torch

    return torch.cuda.is_available()


def stream(device: Any) -> int:
    """torch's current CUDA stream on ``device`` (the capture stream inside CUDA-graph capture),
    as the integer handle the kernels take."""
    import torch

    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None and getattr(device, "index", None) is not None:
        return int(raw(device.index))  # about 10x cheaper than building a torch.cuda.Stream
    return int(torch.cuda.current_stream(device).cuda_stream)


def kernel_dtype(*xs: Any):
    """float64 if any input (tensor or array) is float64, else float32 (the CPU kernels' rule)."""
    import numpy as np
    import torch

    def is64(x: Any) -> bool:
        dt = getattr(x, "dtype", None)
        return dt is torch.float64 or (isinstance(dt, np.dtype) and dt == np.float64)

    return torch.float64 if any(is64(x) for x in xs) else torch.float32


def _on(x: Any, device: Any, dtype: Any):
    import torch

    return torch.as_tensor(x, device=device).detach().to(dtype).contiguous()


def _flags(x: Any, device: Any):
    import torch

    return None if x is None else (torch.as_tensor(x, device=device).detach() != 0).to(torch.uint8).contiguous()


def _ptr(x: Any) -> int:
    return 0 if x is None else int(x.data_ptr())


def nstep_returns(rewards, terminated, truncated, option_terminations, next_values, gamma: float, n: int,
                  lam: float = 1.0):
    import torch

    dev = rewards.device
    dt = kernel_dtype(rewards, next_values)
    r = _on(rewards, dev, dt)
    nv = None if next_values is None else _on(next_values, dev, dt)
    term, trunc, oe = _flags(terminated, dev), _flags(truncated, dev), _flags(option_terminations, dev)
    T, N = r.shape
    ret, disc = torch.empty_like(r), torch.empty_like(r)
    steps = torch.empty(T, N, dtype=torch.int64, device=dev)
    _cuda.nstep_returns(dt == torch.float64, _ptr(r), _ptr(term), _ptr(trunc), _ptr(oe), _ptr(nv), T, N, gamma, lam, n,
                        _ptr(ret), _ptr(disc), _ptr(steps), stream(dev))
    return ret, disc, steps


def option_values(q, epsilon: float):
    import torch

    dev = q.device
    dt = kernel_dtype(q)
    a = _on(q, dev, dt)
    out = torch.empty(a.shape[0], dtype=dt, device=dev)
    _cuda.option_values(dt == torch.float64, _ptr(a), a.shape[0], a.shape[1], epsilon, _ptr(out), stream(dev))
    return out


def option_bootstrap(q_next, beta_next, options, epsilon: float):
    import torch

    dev = q_next.device
    dt = kernel_dtype(q_next, beta_next)
    q, b = _on(q_next, dev, dt), _on(beta_next, dev, dt)
    o = _on(options, dev, torch.int64)
    out = torch.empty(q.shape[0], dtype=dt, device=dev)
    _cuda.option_bootstrap(dt == torch.float64, _ptr(q), _ptr(b), b.ndim == 2, _ptr(o), q.shape[0], q.shape[1],
                           epsilon, _ptr(out), stream(dev))
    return out


def soft_option_targets(q_next, logp_next, q_omega_next, beta_next, options, rewards, discounts, alpha,
                        tau: float, soft: bool, xi: float):
    import torch

    dev = q_next.device
    floats = [q_next, logp_next, q_omega_next, beta_next, rewards, discounts, alpha]
    dt = kernel_dtype(*floats)
    q, lp, qo, be, r, d, al = (_on(x, dev, dt) for x in floats)
    o = _on(options, dev, torch.int64)
    B, K = qo.shape
    outs = [torch.empty(B, dtype=dt, device=dev) for _ in range(4)]
    _cuda.soft_option_targets(dt == torch.float64, _ptr(q), _ptr(lp), _ptr(qo), _ptr(be), _ptr(o), _ptr(r), _ptr(d),
                              _ptr(al), B, K, tau, soft, xi, *(_ptr(x) for x in outs), stream(dev))
    return outs


def skill_rewards(logits, skills):
    import torch

    dev = logits.device
    dt = kernel_dtype(logits)
    x = _on(logits, dev, dt)
    z = _on(skills, dev, torch.int64)
    B, Z = x.shape
    reward = torch.empty(B, dtype=dt, device=dev)
    correct = torch.empty(B, dtype=torch.bool, device=dev)
    _cuda.skill_rewards(dt == torch.float64, _ptr(x), _ptr(z), B, Z, _ptr(reward), _ptr(correct), stream(dev))
    return reward, correct


def feudal_terms(states, goals, starts, c: int, eps: float):
    import torch

    dev = states.device
    dt = kernel_dtype(states, goals)
    s, g = _on(states, dev, dt), _on(goals, dev, dt)
    st = _flags(starts, dev)
    L, N, D = s.shape
    intrinsic = torch.empty(L - c, N, dtype=dt, device=dev)
    direction = torch.empty(L - c, N, D, dtype=dt, device=dev)
    horizon = torch.empty(L - c, N, dtype=torch.int64, device=dev)
    _cuda.feudal_terms(dt == torch.float64, _ptr(s), _ptr(g), _ptr(st), L, N, D, c, eps, _ptr(intrinsic),
                       _ptr(direction), _ptr(horizon), stream(dev))
    return intrinsic, direction, horizon
