"""The FuN manager's dilated LSTM: state bookkeeping and its relation to a plain LSTM cell."""
from __future__ import annotations

import pytest
import torch

from hrlkit.nets import DilatedLSTM


def test_each_copy_is_updated_every_r_steps():
    torch.manual_seed(0)
    net = DilatedLSTM(3, 5, dilation=4)
    state = net.initial_state(2)
    for step in range(9):
        before_h, before_c, _ = (s.clone() for s in state)
        _, state = net(torch.randn(2, 3), state)
        h, c, t = state
        changed = ((h != before_h).any(dim=(1, 2)) | (c != before_c).any(dim=(1, 2))).tolist()
        assert changed == [k == step % 4 for k in range(4)], step
        assert t.tolist() == [step + 1, step + 1]


def test_dilation_one_is_a_plain_lstm_cell_and_output_is_the_mean_of_copies():
    torch.manual_seed(0)
    net = DilatedLSTM(3, 5, dilation=1)
    xs = torch.randn(6, 2, 3)
    state = net.initial_state(2)
    hc = (torch.zeros(2, 5), torch.zeros(2, 5))
    for x in xs:
        out, state = net(x, state)
        hc = net.cell(x, hc)
        assert torch.allclose(out, hc[0])
    net4 = DilatedLSTM(3, 5, dilation=4)
    s = net4.initial_state(2)
    for x in xs:
        out, s = net4(x, s)
    assert torch.allclose(out, s[0].mean(dim=0))


def test_copy_k_sees_every_rth_input():
    """Copy k's state equals a plain LSTM cell run on inputs k, k + r, k + 2r, ..."""
    torch.manual_seed(1)
    r = 3
    net = DilatedLSTM(2, 4, dilation=r)
    xs = torch.randn(10, 1, 2)
    state = net.initial_state(1)
    for x in xs:
        _, state = net(x, state)
    for k in range(r):
        hc = (torch.zeros(1, 4), torch.zeros(1, 4))
        for x in xs[k::r]:
            hc = net.cell(x, hc)
        assert torch.allclose(state[0][k], hc[0], atol=1e-6) and torch.allclose(state[1][k], hc[1], atol=1e-6)


def test_reset_where_zeroes_only_the_masked_envs_and_keeps_phases_apart():
    torch.manual_seed(2)
    net = DilatedLSTM(2, 3, dilation=2)
    state = net.initial_state(3)
    for _ in range(3):
        _, state = net(torch.randn(3, 2), state)
    state = DilatedLSTM.reset_where(state, torch.tensor([False, True, False]))
    h, c, t = state
    assert t.tolist() == [3, 0, 3]
    assert (h[:, 1] == 0).all() and (c[:, 1] == 0).all() and (h[:, 0] != 0).any()
    before = state[0].clone()
    _, state = net(torch.randn(3, 2), state)
    # env 1 restarted at copy 0; envs 0 and 2 are at step 3, so they update copy 1
    assert (state[0][0, 1] != before[0, 1]).any() and (state[0][1, 1] == before[1, 1]).all()
    assert (state[0][1, 0] != before[1, 0]).any() and (state[0][0, 0] == before[0, 0]).all()


def test_gradients_flow_through_an_unrolled_sequence():
    net = DilatedLSTM(2, 3, dilation=2)
    x = torch.randn(5, 1, 2, requires_grad=True)
    state = net.initial_state(1)
    outs = []
    for t in range(5):
        o, state = net(x[t], state)
        outs.append(o)
    outs[-1].sum().backward()
    assert x.grad[0].abs().sum() > 0  # step 0's input reaches the last output through copy 0
    assert all(p.grad is not None for p in net.parameters())


def test_bad_dilation():
    with pytest.raises(ValueError, match="dilation"):
        DilatedLSTM(2, 3, dilation=0)
