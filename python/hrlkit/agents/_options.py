"""Bookkeeping every option agent shares: which option each env runs, when it terminates, and
the option-health statistics that go into the logs (share of steps, mean duration)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Algorithm


def effective_options(shares: np.ndarray) -> float:
    """exp of the entropy of the option shares (of steps): K when K options share the steps
    evenly, 1 when one option takes them all (0 when no step was counted)."""
    p = np.asarray(shares, dtype=np.float64)
    if p.sum() <= 0:
        return 0.0
    p = p[p > 0] / p.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


class OptionTracker:
    """The running option of each of ``num_envs`` envs, and how long it has run.

    Per vector step the agent calls :meth:`terminations` with each env's termination
    probability of its running option, picks new options where it returns True, and hands them
    to :meth:`start`. Episode starts (``on_episode_start``) force a new choice.
    """

    def __init__(self, num_envs: int, num_options: int):
        self.num_options = num_options
        self.options = np.zeros(num_envs, dtype=np.int64)
        self.age = np.zeros(num_envs, dtype=np.int64)  # steps the running option has lasted
        self.needs_option = np.ones(num_envs, dtype=bool)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stat_steps = np.zeros(self.num_options, dtype=np.int64)
        self.stat_terminations = 0
        self.stat_decisions = 0
        self.stat_durations: list[int] = []

    def on_episode_start(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            if not self.needs_option[i] and self.age[i] > 0:
                self.stat_durations.append(int(self.age[i]))
        self.needs_option |= mask

    def terminations(self, beta_running: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Envs that must choose an option now: new episodes, and running options that
        terminate with probability ``beta_running`` (each env's running option's beta)."""
        running = ~self.needs_option
        terminate = running & (rng.random(len(self.options)) < beta_running)
        for i in np.flatnonzero(terminate):
            self.stat_durations.append(int(self.age[i]))
        self.stat_terminations += int(terminate.sum())
        self.stat_decisions += int(running.sum())
        return self.needs_option | terminate

    def start(self, choose: np.ndarray, new_options: np.ndarray) -> np.ndarray:
        """Run ``new_options`` where ``choose``; count this step. Returns the running options."""
        self.options = np.where(choose, new_options, self.options)
        self.age[choose] = 0
        self.needs_option[:] = False
        self.age += 1
        np.add.at(self.stat_steps, self.options, 1)
        return self.options

    def log_stats(self) -> dict[str, float]:
        """Share of steps per option, the effective number of options, termination rate, mean
        duration; resets the counters."""
        total = max(1, int(self.stat_steps.sum()))
        shares = self.stat_steps / total
        out = {f"options/share_{k}": float(c) for k, c in enumerate(shares)}
        out["options/effective"] = effective_options(shares)
        out["options/termination_rate"] = self.stat_terminations / max(1, self.stat_decisions)
        if self.stat_durations:
            out["options/mean_duration"] = float(np.mean(self.stat_durations))
        out["options/num_used"] = float((shares > 0.01).sum())
        self.reset_stats()
        return out

    def state(self) -> dict[str, Any]:
        return {"options": self.options.copy(), "option_age": self.age.copy(), "needs_option": self.needs_option.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.options = np.array(state["options"])
        self.age = np.array(state["option_age"])
        self.needs_option = np.array(state["needs_option"])


class OptionAgent(Algorithm):
    """An agent whose envs each run an option (``self.tracker``, an :class:`OptionTracker`):
    the runtime hooks that only touch the tracker, and how ``predict`` carries options."""

    tracker: OptionTracker

    def on_episode_start(self, mask: np.ndarray) -> None:
        self.tracker.on_episode_start(mask)

    def active_option(self, state: Any) -> int | None:
        return None if state is None else int(state["option"][0])

    def state_extra(self) -> dict[str, Any]:
        return self.tracker.state()

    def load_state_extra(self, state: dict[str, Any]) -> None:
        self.tracker.load_state(state)

    def _predict_options(self, state: Any, chosen: np.ndarray, beta: np.ndarray, deterministic: bool) -> np.ndarray:
        """The options a ``predict`` call runs: ``chosen`` at an episode start (``state`` None);
        else each running option, replaced by ``chosen`` where it terminates (beta >= 0.5 when
        deterministic, else with probability beta). beta: [N, K] termination probabilities."""
        if state is None:
            return chosen
        options = np.asarray(state["option"])
        b = beta[np.arange(len(options)), options]
        stop = b >= 0.5 if deterministic else self.rng.random(len(options)) < b
        return np.where(stop, chosen, options)
