"""Small network builders shared by the agents."""
from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(in_dim: int, hidden_sizes: list[int], activation: str = "tanh", *, out_dim: int | None = None) -> nn.Sequential:
    """Linear layers with ``activation`` between them (and after the last hidden layer when
    ``out_dim`` is None, so the result is a feature body); orthogonal init with gain sqrt(2)."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden_sizes:
        layers += [init_linear(nn.Linear(last, h), math.sqrt(2)), act()]
        last = h
    if out_dim is not None:
        layers.append(init_linear(nn.Linear(last, out_dim), 1.0))
    return nn.Sequential(*layers)


def init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())
