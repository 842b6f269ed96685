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


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging, target <- (1 - tau) target + tau source, in one foreach call."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class EnsembleMLP(nn.Module):
    """E independent MLPs evaluated together: weights are stacked [E, in, out], so each layer is
    one batched matmul for all members (no Python loop over members).

    Input [N, in] is shared by all members; input [E, N, in] gives each member its own rows.
    The output is [E, N, out]. Members start from PyTorch's ``nn.Linear`` initialisation, each
    drawn independently. ``detach_params=True`` evaluates the members with their weights
    detached (gradients flow to the input only, e.g. an actor's loss through a critic).
    """

    def __init__(self, members: int, in_dim: int, hidden_sizes: list[int], out_dim: int, activation: str = "relu"):
        super().__init__()
        self.members, self.in_dim, self.out_dim = members, in_dim, out_dim
        dims = [in_dim, *hidden_sizes, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, o in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(i)
            self.weights.append(nn.Parameter(torch.empty(members, i, o).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, o).uniform_(-bound, bound)))
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, *, detach_params: bool = False) -> torch.Tensor:
        last = len(self.weights) - 1
        for j, (w, b) in enumerate(zip(self.weights, self.biases)):
            if detach_params:
                w, b = w.detach(), b.detach()
            x = torch.matmul(x, w) + b if x.dim() == 2 else torch.baddbmm(b, x, w)
            if j < last:
                x = self.activation(x)
        return x
