"""Tabular Option-Critic: the paper's one-step updates, equal to hrlkit.OptionCritic's on one-hot
states, for many runs at once."""
import gymnasium as gym
import numpy as np
import pytest
import torch

import hrlkit
from hrlkit.runtime.config import ConfigError

S, A = 104, 4


def _oc_agent(K: int, eps: float, xi: float, gamma: float = 0.9):
    return hrlkit.OptionCritic(
        "hrlkit/FourRooms-v0", seed=0, num_options=K, num_envs=1, rollout_steps=1, hidden_sizes=[], head_bias=False,
        optimizer="sgd", update_epochs=1, num_minibatches=1,
        learning_rate=3.0, critic_learning_rate=0.5, termination_learning_rate=0.25, action_critic=True,
        target_update_every=1, critic_coef=1.0, termination_coef=1.0, entropy_coef=0.0, max_grad_norm=0.0,
        deliberation_cost=xi, epsilon_start=eps, epsilon_end=eps, gamma=gamma,
    )


def _tables(net, K):
    """The OptionCritic net's bias-free heads as the tabular learner's tables ([1, S, ...])."""
    w = {n: p.detach().double().numpy() for n, p in net.named_parameters()}
    return {
        "q_omega": w["q.weight"].T[None],
        "term": w["beta.weight"].T[None],
        "logits": w["pi.weight"].T.reshape(S, K, A)[None],
        "q_u": w["qu.weight"].T.reshape(S, K, A)[None],
    }


@pytest.mark.parametrize("K", [4, 1])
def test_updates_equal_option_critic_on_one_hot_states(K):
    eps, xi = 0.1, 0.02
    agent = _oc_agent(K, eps, xi)
    assert {n for n, _ in agent.net.named_parameters()} == {"q.weight", "beta.weight", "pi.weight", "qu.weight"}
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in agent.net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    agent.target.load_state_dict(agent.net.state_dict())
    tab = hrlkit.TabularOptionCritic(S, A, 1, num_options=K, gamma=0.9, critic_learning_rate=0.5, policy_learning_rate=3.0,
                                     termination_learning_rate=0.25, epsilon=eps, deliberation_cost=xi)
    for name, table in _tables(agent.net, K).items():
        getattr(tab, name)[:] = table
    rng = np.random.default_rng(0)
    for step in range(30):
        s, s2, w, a = rng.integers(S), rng.integers(S), rng.integers(K), rng.integers(A)
        r, done = float(rng.random() < 0.3), bool(rng.random() < 0.2)
        if step == 0:
            s2 = s  # the same state on both sides of the step
        agent.rollout = [(np.array([s]), np.array([w]), torch.tensor([a]), np.array([r], dtype=np.float32),
                          np.array([s2]), np.array([done]), np.array([False]))]
        agent.update()
        agent.num_updates += 1
        tab.options = np.array([w])
        tab.update(np.array([s]), np.array([a]), np.array([r]), np.array([s2]), np.array([done]))
        for name, table in _tables(agent.net, K).items():
            np.testing.assert_allclose(getattr(tab, name), table, rtol=1e-4, atol=1e-5, err_msg=f"{name}, step {step}")


def test_one_update_by_hand():
    tab = hrlkit.TabularOptionCritic(3, 2, 1, num_options=2, gamma=0.9, critic_learning_rate=0.5, policy_learning_rate=2.0,
                                     termination_learning_rate=0.25, epsilon=0.1, deliberation_cost=0.05)
    tab.q_omega[0, 1] = [1.0, 3.0]        # at s' = 1
    tab.term[0, 1] = [0.0, 0.0]           # beta = 0.5 there
    tab.q_omega[0, 0] = [0.4, 0.0]        # at s = 0
    tab.q_u[0, 0, 0] = [0.2, 0.6]
    tab.options = np.array([0])
    out = tab.update(np.array([0]), np.array([1]), np.array([1.0]), np.array([1]), np.array([False]))
    v = 0.9 * 3.0 + 0.1 * 2.0              # epsilon-greedy value at s'
    u = 0.5 * 1.0 + 0.5 * v
    g = 1.0 + 0.9 * u
    assert out["td_error"][0] == pytest.approx(g - 0.4)
    assert tab.q_omega[0, 0, 0] == pytest.approx(0.4 + 0.5 * (g - 0.4))
    assert tab.q_u[0, 0, 0, 1] == pytest.approx(0.6 + 0.5 * (g - 0.6))
    assert tab.q_u[0, 0, 0, 0] == 0.2                      # other actions untouched
    feedback = 0.6 - 0.4                                   # Q_U - Q_Omega, before the step
    np.testing.assert_allclose(tab.logits[0, 0, 0], [2.0 * feedback * -0.5, 2.0 * feedback * 0.5])
    adv = 1.0 - v + 0.05
    assert out["termination_advantage"][0] == pytest.approx(adv)
    assert tab.term[0, 1, 0] == pytest.approx(-0.25 * 0.25 * adv)
    assert tab.term[0, 1, 1] == 0.0 and tab.q_omega[0, 1].tolist() == [1.0, 3.0]
    # terminal s': no bootstrap, no termination step
    tab.update(np.array([2]), np.array([0]), np.array([1.0]), np.array([1]), np.array([True]))
    assert tab.q_omega[0, 2, 0] == pytest.approx(0.5) and tab.term[0, 1, 0] == pytest.approx(-0.25 * 0.25 * adv)


def test_runs_are_independent_and_inactive_runs_unchanged():
    tab = hrlkit.TabularOptionCritic(5, 2, 3, num_options=2)
    tab.options = np.array([0, 1, 0])
    tab.update([0, 0, 0], [1, 1, 1], [1.0, 1.0, 1.0], [1, 1, 1], [True, True, True], active=[True, False, True])
    assert tab.q_omega[0, 0, 0] == 0.5 and tab.q_omega[2, 0, 0] == 0.5
    assert not tab.q_omega[1].any() and not tab.q_u[1].any() and not tab.logits[1].any()


def test_bad_input_names_the_argument():
    with pytest.raises(ConfigError, match="policy_learning_rate: expected a number >= 0"):
        hrlkit.TabularOptionCritic(4, 2, policy_learning_rate=-1.0)
    with pytest.raises(ConfigError, match="unknown hyperparameter 'temperature'.*valid keys: num_options"):
        hrlkit.TabularOptionCritic(4, 2, temperature=0.01)
    with pytest.raises(ConfigError, match="policy_learning_rate"):
        hrlkit.TabularOptionCritic(4, 2, policy_learning_rate="fast")
    assert hrlkit.TabularOptionCritic(4, 2, policy_learning_rate="2.5", baseline="false").config.policy_learning_rate == 2.5  # CLI strings
    with pytest.raises(ValueError, match="num_runs: expected an integer >= 1, got 0"):
        hrlkit.TabularOptionCritic(4, 2, 0)
    with pytest.raises(TypeError, match="num_states: expected an integer, got 4.0"):
        hrlkit.TabularOptionCritic(4.0, 2)
    tab = hrlkit.TabularOptionCritic(4, 2, 2)
    before = tab.q_omega.copy()
    with pytest.raises(ValueError, match="next_states: expected 2 state indices in \\[0, 4\\)"):
        tab.update([0, 1], [0, 1], [0.0, 1.0], [0, 4], [False, False])
    with pytest.raises(ValueError, match="actions: expected 2 action indices in \\[0, 2\\)"):
        tab.update([0, 1], [0, 2], [0.0, 1.0], [0, 1], [False, False])
    np.testing.assert_array_equal(tab.q_omega, before)
    with pytest.raises(ValueError, match="envs: expected Discrete\\(4\\) observations"):
        tab.run_episodes([gym.make("hrlkit/FourRooms-v0") for _ in range(2)], 1)
    with pytest.raises(ValueError, match="terminated: expected 2 bools"):
        tab.update([0, 1], [0, 1], [0.0, 1.0], [0, 1], [False])
    with pytest.raises(ValueError, match="active: expected 2 bools"):
        tab.update([0, 1], [0, 1], [0.0, 1.0], [0, 1], [False, False], active=[0, 1])
    with pytest.raises(ValueError, match="rewards: expected 2 finite numbers"):
        tab.update([0, 1], [0, 1], [0.0, np.nan], [0, 1], [False, False])
    with pytest.raises(ValueError, match="options: expected 2 option ids in \\[0, 4\\)"):
        tab.policy([0, 1], options=[0, -1])
    np.testing.assert_array_equal(tab.q_omega, before)
    rng_state = tab.rng.bit_generator.state
    with pytest.raises(ValueError, match="episode_start: expected 2 bools"):
        tab.after_step([0, 1], [True])
    with pytest.raises(ValueError, match="mask: expected 2 bools"):
        tab.choose_options([0, 1], [True, False, True])
    assert tab.rng.bit_generator.state == rng_state  # nothing drawn before the refusal
    with pytest.raises(ValueError, match="episodes: expected an integer >= 1, got 0"):
        hrlkit.TabularOptionCritic(104, 4, 1).run_episodes([gym.make("hrlkit/FourRooms-v0")], 0)
    one = gym.make("hrlkit/FourRooms-v0")
    with pytest.raises(ValueError, match="envs: expected 2 distinct envs .* \\(1 distinct\\)"):
        hrlkit.TabularOptionCritic(104, 4, 2).run_episodes([one, one], 1)
    got = tab.choose_options([0, 1])
    running = tab.options.copy()
    got[:] = 99  # a copy, not the running options
    np.testing.assert_array_equal(tab.options, running)


def test_learns_four_rooms_and_the_hook_sees_every_episode():
    envs = [gym.make("hrlkit/FourRooms-v0") for _ in range(4)]
    tab = hrlkit.TabularOptionCritic(S, A, 4, seed=0)
    seen = []
    lengths = tab.run_episodes(envs, 150, lambda run, ep, n: seen.append((run, ep, n)), seed=0)
    assert lengths.shape == (4, 150) and len(seen) == 600
    assert sorted(seen) == sorted((r, e, int(lengths[r, e])) for r in range(4) for e in range(150))
    first, last = lengths[:, :25].mean(), lengths[:, -25:].mean()
    assert last < 40 < first, (first, last)  # random walks take ~hundreds of steps
