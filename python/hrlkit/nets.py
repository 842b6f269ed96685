"""Small network builders shared by the agents."""
from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(in_dim: int, hidden_sizes: list[int], activation: str = "tanh") -> nn.Sequential:
    """A feature body: linear layers, each followed by ``activation``; orthogonal init with gain
    sqrt(2)."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden_sizes:
        layers += [init_linear(nn.Linear(last, h), math.sqrt(2)), act()]
        last = h
    return nn.Sequential(*layers)


def init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())
