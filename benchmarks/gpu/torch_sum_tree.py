"""A prioritized replay written in plain torch on the GPU: the peer the device buffer is measured
against (benchmarks/gpu/gpu_benchmarks.py). A binary sum tree and min tree in one tensor each,
stratified sampling by a level-by-level vectorized descent, priority updates by recomputing the
parents of the touched leaves level by level; rows in one CUDA tensor per field.
"""
from __future__ import annotations

import torch


class TorchPrioritizedReplay:
    def __init__(self, capacity: int, spec: dict, device, alpha: float = 0.6, eps: float = 1e-6):
        self.capacity, self.alpha, self.eps, self.device = capacity, alpha, eps, device
        self.depth = max(1, (capacity - 1).bit_length())
        self.leaves = 1 << self.depth
        self.sums = torch.zeros(2 * self.leaves, dtype=torch.float64, device=device)
        self.mins = torch.full((2 * self.leaves,), float("inf"), dtype=torch.float64, device=device)
        self.cols = {k: torch.zeros((capacity, *shape), dtype=dt, device=device) for k, (shape, dt) in spec.items()}
        self.size = self.pos = 0
        self.max_priority = 1.0

    def _refresh(self, idx: torch.Tensor) -> None:
        node = idx + self.leaves
        for _ in range(self.depth):
            node = node // 2
            left, right = 2 * node, 2 * node + 1
            self.sums[node] = self.sums[left] + self.sums[right]
            self.mins[node] = torch.minimum(self.mins[left], self.mins[right])

    def add(self, **rows) -> None:
        n = next(iter(rows.values())).shape[0]
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        for k, v in rows.items():
            self.cols[k][idx] = v.to(self.device)
        p = self.max_priority ** self.alpha
        self.sums[idx + self.leaves] = p
        self.mins[idx + self.leaves] = p
        self._refresh(idx)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def sample(self, n: int, beta: float) -> dict:
        total = self.sums[1]
        u = (torch.arange(n, device=self.device, dtype=torch.float64)
             + torch.rand(n, device=self.device, dtype=torch.float64)) * (total / n)
        node = torch.ones(n, dtype=torch.int64, device=self.device)
        for _ in range(self.depth):
            left = self.sums[2 * node]
            right = u >= left
            u = torch.where(right, u - left, u)
            node = 2 * node + right.long()
        idx = (node - self.leaves).clamp(max=self.size - 1)
        p = self.sums[idx + self.leaves]
        out = {k: v[idx] for k, v in self.cols.items()}
        out["indices"] = idx
        out["weights"] = (self.mins[1] / p).pow(beta).float()
        return out

    def update_priorities(self, idx: torch.Tensor, td: torch.Tensor) -> None:
        p = (td.abs().double() + self.eps).pow(self.alpha)
        self.sums[idx + self.leaves] = p
        self.mins[idx + self.leaves] = p
        self._refresh(idx)
