"""Checkpoints as an older hrlkit wrote them, for the tests of fields added later (``saved_before``)."""
from __future__ import annotations

import torch


def loaded_without(agent, tmp_path, *keys: str):
    """``agent`` trained a little, saved as a checkpoint from before ``keys`` existed (its
    configuration lacking them), loaded again; the loaded agent's networks must be the saved ones."""
    from hrlkit.runtime import checkpoint

    agent.learn(24, progress=False, eval_every=None)
    payload = agent.checkpoint_payload()
    for key in keys:
        del payload["config"][key]
    path = str(tmp_path / "before.pt")
    checkpoint.save(path, payload)
    loaded = type(agent).load(path)
    for x, y in zip(agent.net.state_dict().values(), loaded.net.state_dict().values()):
        assert torch.equal(x, y)
    return loaded
