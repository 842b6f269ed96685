"""Small network builders shared by the agents."""
from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import nn
from torch.nn import functional as F

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
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging, target <- (1 - tau) target + tau source, in one foreach call."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def standardized(x: torch.Tensor, eps: float = 1e-8, std_floor: float = 0.0) -> torch.Tensor:
    """(x - mean) / (max(std, std_floor) + eps) over all of x (zeros for a single value): advantage
    normalization. A floor keeps a batch of near-equal values (no reward seen yet) from being blown
    up to unit scale; 0: plain standardization."""
    if x.numel() <= 1:
        return torch.zeros_like(x)
    return (x - x.mean()) / (x.std().clamp_min(std_floor) + eps)  # a std is >= 0: floor 0 leaves it as is


class PopArt(nn.Module):
    """Adaptive target normalization that preserves the outputs (PopArt, van Hasselt et al. 2016).

    A value head learns normalized values; the value in the return's units is sigma * head + mu,
    with mu and sigma the running mean and spread of the regression targets (debiased exponential
    moving averages of their first and second moments, ``rate`` per update). ``update`` moves the
    statistics to a new batch of targets and rescales the heads' last linear layers so that every
    head's output in the return's units is unchanged (the "preserve" step): W <- W sigma / sigma',
    b <- (sigma b + mu - mu') / sigma'. Losses read ``normalize(targets)`` against the head's raw
    output, so the critic's gradient keeps its scale whatever the reward's. Before any update
    mu = 0 and sigma = 1 (the identity).

    sigma is floored at ``min_std`` (default 1, in the return's units): large returns are scaled
    down, small ones never blown up. With sparse rewards the returns' spread before the first
    reward is the critic's own noise; normalizing it to unit scale (a floor of 1e-4) kept FuN's
    manager from ever reaching the nine-rooms goal on one seed of two."""

    def __init__(self, rate: float = 0.01, min_std: float = 1.0):
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate: expected a float in (0, 1], got {rate!r}")
        self.rate, self.min_std = float(rate), float(min_std)
        self.register_buffer("moments", torch.zeros(3, dtype=torch.float64))  # E[x], E[x^2], debias weight

    @property
    def mean(self) -> torch.Tensor:
        m = self.moments
        return (m[0] / m[2]).float() if m[2] > 0 else torch.zeros((), device=m.device)

    @property
    def std(self) -> torch.Tensor:
        m = self.moments
        if m[2] <= 0:
            return torch.ones((), device=m.device)
        mu = m[0] / m[2]
        return (m[1] / m[2] - mu * mu).clamp_min(self.min_std ** 2).sqrt().float()

    @torch.no_grad()
    def update(self, targets: torch.Tensor, heads: list[nn.Linear]) -> None:
        """Fold a batch of targets (in the return's units) into the statistics, then rescale
        ``heads`` (each a Linear with a bias, every output unit a normalized value)."""
        old_mu, old_sigma = self.mean, self.std
        x = targets.detach().to(torch.float64).flatten()
        r = self.rate
        self.moments.mul_(1.0 - r).add_(r * torch.stack([x.mean(), (x * x).mean(), x.new_ones(())]))
        new_mu, new_sigma = self.mean, self.std
        for head in heads:
            head.weight.mul_(old_sigma / new_sigma)
            head.bias.mul_(old_sigma).add_(old_mu - new_mu).div_(new_sigma)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def image_layout(shape) -> tuple[int, int, int] | None:
    """(height, width, channels) of a pixel observation of this shape, or None when it is not one.

    Pixels are uint8 arrays in one of the layouts gymnasium's wrappers make: H x W x C (CarRacing's
    96x96x3; ``GrayscaleObservation(keep_dim=True)``'s 96x96x1), C x H x W (channels first, the
    smaller of the two end axes taken as the channels, SB3's rule), or S x H x W x C
    (``FrameStackObservation`` over H x W x C frames: the S frames' channels are stacked, S * C).
    A 2-D frame (``GrayscaleObservation`` without keep_dim) is H x W x 1."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3:
        if shape[-1] <= shape[0]:
            return shape[0], shape[1], shape[2]
        return shape[1], shape[2], shape[0]
    if len(shape) == 4:
        return shape[1], shape[2], shape[0] * shape[3]
    return None


def is_image_space(space) -> bool:
    """A Box of uint8 pixels in one of :func:`image_layout`'s layouts, at least 8 pixels high and
    wide (e.g. CarRacing's 96x96x3, or four stacked 64x64 grayscale frames)."""
    shape = getattr(space, "shape", None)
    if shape is None or str(getattr(space, "dtype", "")) != "uint8" or not isinstance(space, gym.spaces.Box):
        return False
    layout = image_layout(shape)
    return layout is not None and min(layout[0], layout[1]) >= 8


def to_channels_first(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A batch [N, *shape] of pixels in ``shape``'s layout as [N, C, H, W] (no copy where none is
    needed; the dtype is kept, so uint8 stays uint8 until the first conv layer)."""
    n = x.shape[0]
    if len(shape) == 2:
        return x[:, None]
    if len(shape) == 3:
        return x.permute(0, 3, 1, 2) if shape[-1] <= shape[0] else x
    s, h, w, c = shape  # S frames of H x W x C: channels (frame, channel)
    return x.permute(0, 1, 4, 2, 3).reshape(n, s * c, h, w)


class ConvEncoder(nn.Module):
    """Pixels [N, *shape] (uint8, or float in 0..255; any :func:`image_layout` layout) to features
    [N, out_dim]: inputs scaled to [0, 1], three convolutions with strides 4, 2, 1 (8x8, 4x4, 3x3:
    a 96x96 frame becomes 8x8x64, a 64x64 one 4x4x64; the Nature-DQN trunk; the seed's stride-1
    8x8 first layer kept 89x89 maps and was a defect), then a linear layer, LayerNorm and tanh
    (bounded features, as in SAC-AE and DrQ)."""

    def __init__(self, shape: tuple[int, ...], out_dim: int = 256):
        super().__init__()
        layout = image_layout(shape)
        if layout is None:
            raise ValueError(f"shape: expected an image layout (H, W, C), (C, H, W) or (S, H, W, C), got {shape!r}")
        h, w, c = layout
        if min(h, w) < 36:  # 8x8/4, 4x4/2, 3x3/1 leave nothing of a smaller frame
            raise ValueError(f"shape: the conv encoder needs frames of at least 36x36 pixels, got {h}x{w} "
                             f"(observation shape {tuple(shape)}); resize them, e.g. ResizeObservation:shape=[64,64]")
        self.shape = tuple(int(d) for d in shape)
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, c, h, w)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, out_dim), nn.LayerNorm(out_dim), nn.Tanh())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_first(x, self.shape).to(torch.float32) / 255.0
        return self.head(self.convs(x))


class ImageRows(nn.Module):
    """Rows [first, last) of every frame and channel of pixels [N, *shape] (any :func:`image_layout`
    layout), flattened and scaled to [0, 1]: [N, C * (last - first) * W]. No parameters: a fixed
    view for an MLP (e.g. CarRacing's dashboard strip, which draws the car's speed, wheel spin,
    steering and yaw rate)."""

    def __init__(self, shape: tuple[int, ...], rows: tuple[int, int]):
        super().__init__()
        layout = image_layout(shape)
        if layout is None:
            raise ValueError(f"shape: expected an image layout (H, W, C), (C, H, W) or (S, H, W, C), got {shape!r}")
        h, w, c = layout
        first, last = (int(r) for r in rows)
        if not 0 <= first < last <= h:
            raise ValueError(f"rows: expected [first, last) with 0 <= first < last <= {h} (the frame's height), "
                             f"got {list(rows)}")
        self.shape, self.first, self.last = tuple(int(d) for d in shape), first, last
        self.out_dim = c * (last - first) * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_channels_first(x, self.shape)[:, :, self.first:self.last]
        return x.reshape(x.shape[0], -1).to(torch.float32) / 255.0


class EnsembleMLP(nn.Module):
    """E independent MLPs evaluated together: weights are stacked [E, in, out], so each layer is
    one batched matmul for all members (no Python loop over members).

    Input [N, in] is shared by all members; input [E, N, in] gives each member its own rows.
    The output is [E, N, out]. Members start from PyTorch's ``nn.Linear`` initialisation, each
    drawn independently. ``detach_params=True`` evaluates the members with their weights
    detached (gradients flow to the input only, e.g. an actor's loss through a critic).
    ``layer_norm=True`` puts a LayerNorm (each member its own gain and bias, starting at 1 and 0)
    between every hidden linear layer and its activation; False creates no such parameters.
    """

    def __init__(self, members: int, in_dim: int, hidden_sizes: list[int], out_dim: int, activation: str = "relu",
                 layer_norm: bool = False):
        super().__init__()
        dims = [in_dim, *hidden_sizes, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, o in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(i)
            self.weights.append(nn.Parameter(torch.empty(members, i, o).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, o).uniform_(-bound, bound)))
        self.norm_gains = nn.ParameterList(nn.Parameter(torch.ones(members, 1, h)) for h in hidden_sizes) \
            if layer_norm else None
        self.norm_biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, h)) for h in hidden_sizes) \
            if layer_norm else None
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, *, detach_params: bool = False) -> torch.Tensor:
        last = len(self.weights) - 1
        for j, (w, b) in enumerate(zip(self.weights, self.biases)):
            if detach_params:
                w, b = w.detach(), b.detach()
            x = torch.matmul(x, w) + b if x.dim() == 2 else torch.baddbmm(b, x, w)
            if j < last:
                if self.norm_gains is not None:
                    g, c = self.norm_gains[j], self.norm_biases[j]
                    if detach_params:
                        g, c = g.detach(), c.detach()
                    x = torch.addcmul(c, F.layer_norm(x, x.shape[-1:]), g)
                x = self.activation(x)
        return x


class SharedTrunkEnsemble(nn.Module):
    """E members on one shared trunk: the hidden layers are one MLP that every member reads, each
    member has its own output layer (as Option-Critic's intra-option policies share features).
    Inputs and outputs as :class:`EnsembleMLP`'s: [N, in] shared by all members or [E, N, in]
    one group of rows per member, out [E, N, out]. Initialisation as ``nn.Linear``'s."""

    def __init__(self, members: int, in_dim: int, hidden_sizes: list[int], out_dim: int, activation: str = "relu"):
        super().__init__()
        self.members = members
        self.trunk = EnsembleMLP(1, in_dim, hidden_sizes[:-1], hidden_sizes[-1], activation)
        self.heads = EnsembleMLP(members, hidden_sizes[-1], [], out_dim, activation)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, *, detach_params: bool = False) -> torch.Tensor:
        if x.dim() == 2:  # every member on the same rows
            return self.heads(self.activation(self.trunk(x, detach_params=detach_params)[0]),
                              detach_params=detach_params)
        E, N = x.shape[0], x.shape[1]
        h = self.activation(self.trunk(x.reshape(E * N, -1), detach_params=detach_params)[0])
        return self.heads(h.view(E, N, -1), detach_params=detach_params)


class DilatedLSTM(nn.Module):
    """The dilated LSTM of FeUdal Networks (Vezhnevets et al., 2017): ``dilation`` = r copies of
    the recurrent state share one LSTM cell; at an env's step t only copy t mod r is updated, so
    each copy sees every r-th input and can hold information over r times more steps. The
    output at each step is the mean of the r copies' hidden states.

    State: ``(h, c, t)`` with h, c of shape [r, N, H] and t [N] (each env's own step count, so
    envs that reset at different times keep their own phase). :meth:`initial_state` makes one;
    :meth:`reset_where` zeroes the envs that start a new episode.
    """

    def __init__(self, input_size: int, hidden_size: int, dilation: int):
        super().__init__()
        if dilation < 1:
            raise ValueError(f"dilation: expected an int >= 1, got {dilation!r}")
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.hidden_size, self.dilation = hidden_size, dilation

    def initial_state(self, batch: int, device: torch.device | str | None = None):
        shape = (self.dilation, batch, self.hidden_size)
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device),
                torch.zeros(batch, dtype=torch.int64, device=device))

    @staticmethod
    def reset_where(state, mask: torch.Tensor):
        """The state with every env in ``mask`` ([N] bool) back to zeros and step 0."""
        h, c, t = state
        keep = (~mask).to(h.dtype)[None, :, None]
        return h * keep, c * keep, torch.where(mask, torch.zeros_like(t), t)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The cell's input term x W_ih^T + b_ih, for any number of rows at once (a whole rollout)."""
        return lstm_input_gates(x, self.cell)

    def forward(self, x: torch.Tensor, state):
        """One step for a batch: x [N, input_size] -> (output [N, H], new state)."""
        return self.step(self.input_gates(x), state)

    def step(self, gates_ih: torch.Tensor, state):
        """One step from the input's gates (:meth:`input_gates` of x [N, input_size])."""
        h, c, t = state
        slot = t % self.dilation
        envs = torch.arange(h.shape[1], device=h.device)
        h_new, c_new = lstm_cell(gates_ih, (h[slot, envs], c[slot, envs]), self.cell)
        mine = (slot[None, :] == torch.arange(self.dilation, device=h.device)[:, None])[:, :, None]  # [r, N, 1]
        h = torch.where(mine, h_new[None], h)
        c = torch.where(mine, c_new[None], c)
        return h.mean(dim=0), (h, c, t + 1)


def lstm_input_gates(x: torch.Tensor, cell: nn.LSTMCell) -> torch.Tensor:
    """``cell``'s input term x W_ih^T + b_ih, for any number of rows at once (:func:`lstm_cell`'s input)."""
    return F.linear(x, cell.weight_ih, cell.bias_ih)


def lstm_cell(gates_ih: torch.Tensor, state, cell: nn.LSTMCell):
    """``cell``'s step with the input's term x W_ih^T + b_ih already computed (for a whole rollout in
    one matrix product): the same values, and gradients, as ``cell(x, state)``."""
    h, c = state
    i, f, g, o = (gates_ih + F.linear(h, cell.weight_hh, cell.bias_hh)).chunk(4, 1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c
