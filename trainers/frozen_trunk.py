"""A frozen trunk read once: PPO's models share the policy's lower layers per rollout; an RM reuses them per epoch.

With ``ppo.trainable_layers = k`` the policy trains only its top ``k`` decoder blocks (and final norm and heads); its
embeddings and lower ``n - k`` blocks (the trunk) never change. The reference policy is the SFT model, so its trunk
is the policy's; the value model and reward model, when trained from the SFT model with their own top blocks
(``rm.trainable_layers``), have the same lower layers too, as may the gold reward. Each of them is checked weight by
weight (:func:`harness.judging.shared_trunk.shared_layers`). For a rollout batch the trunk's output is computed once
(:func:`harness.judging.shared_trunk.trunk_states`, no autograd: nothing below the top blocks trains) and every
sharing model runs only its own top blocks on it (:func:`harness.judging.shared_trunk.rest_states`); the PPO epochs
reuse it, so an update runs ``k`` blocks forward and backward instead of all ``n``. The numbers are those of whole
forwards (the same layers on the same inputs; tested to 1e-5 in tests/integration/test_frozen_trunk.py).

A model whose lower layers differ (e.g. a gold judge trained from the base model while the policy was fine-tuned
in full) runs whole, and the log says so. Single process only: under DDP a forward must go through the wrapper,
so with several processes the trunk is frozen but not shared (a warning says so).

The reward-model trainer keeps the trunk's output per training sequence (:class:`TrunkCache`) when only its top
blocks train for more than one epoch: every epoch after the first runs only those blocks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from harness.judging.shared_trunk import decoder_stack, rest_states, shared_layers, trunk_states

log = logging.getLogger(__name__)

#: the models PPO may run on the shared trunk, besides the policy
ROLES = ("reference", "value", "reward", "gold")


@dataclass
class TrunkSharing:
    """``n_shared``: the policy's frozen lower decoder layers; ``shared``: the roles (:data:`ROLES`) whose first
    ``n_shared`` layers and embeddings equal the policy's, so they read its trunk; ``whole``: the other roles
    present, which run whole."""

    n_shared: int
    n_layers: int
    shared: list[str] = field(default_factory=list)
    whole: list[str] = field(default_factory=list)

    def shares(self, role: str) -> bool:
        return role in self.shared

    def states(self, policy, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The trunk's output ``[B, T, H]`` for ``[B, T]`` inputs (no autograd: the trunk is frozen)."""
        with torch.no_grad():
            return trunk_states(policy, self.n_shared, input_ids, attention_mask)

    def final_hidden(self, model, trunk: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``model``'s final (normed) hidden state ``[B, T, H]`` from the trunk's output (its top layers only)."""
        return rest_states(model, self.n_shared, trunk, attention_mask)

    def record(self) -> dict:
        """What the run's ``run.json`` metrics record about the sharing."""
        return {"trunk_layers": self.n_shared, "trunk_shared_by": ["policy", *self.shared], "trunk_not_shared_by": self.whole}


def plan_trunk_sharing(policy, trainable_layers: int | None, models: dict[str, torch.nn.Module | None],
                       num_processes: int = 1) -> TrunkSharing | None:
    """Which of ``models`` (role -> model or None; roles from :data:`ROLES`) share the frozen trunk of ``policy``
    (a causal LM whose top ``trainable_layers`` blocks train, lower ones frozen). None (every model runs whole)
    when ``trainable_layers`` is None, leaves no layer frozen, the policy has no Llama-style decoder stack, or
    several processes train (each with a warning except the first). A model may have an embedding row more than the
    policy (a reward model's pad token): the policy's token ids never reach it. Raises ``ValueError`` for a role
    not in :data:`ROLES`."""
    if unknown := set(models) - set(ROLES):
        raise ValueError(f"plan_trunk_sharing: unknown roles {sorted(unknown)}; known: {ROLES}")
    if not trainable_layers:
        return None
    stack = decoder_stack(policy)
    if stack is None:
        log.warning("PPO trainable_layers=%d: %s has no Llama-style decoder stack; the lower layers are frozen but every "
                    "model runs whole", trainable_layers, type(policy).__name__)
        return None
    n_layers = len(stack.layers)
    n_shared = n_layers - trainable_layers
    if n_shared < 1:
        log.warning("PPO trainable_layers=%d >= the policy's %d layers: no frozen trunk to share", trainable_layers, n_layers)
        return None
    if num_processes > 1:
        log.warning("PPO trainable_layers=%d on %d processes: the lower layers are frozen, but the trunk is not shared "
                    "(a DDP model's forward must run whole)", trainable_layers, num_processes)
        return None
    plan = TrunkSharing(n_shared, n_layers)
    for role, model in models.items():
        if model is not None:
            (plan.shared if shared_layers(policy, model, extra_rows=True) >= n_shared else plan.whole).append(role)
    log.info("PPO: the frozen trunk (embeddings + %d of %d blocks) runs once per rollout for the policy%s%s", n_shared, n_layers,
             "".join(f", {r}" for r in plan.shared),
             f"; whole, as their lower layers differ from the policy's: {', '.join(plan.whole)}" if plan.whole else "")
    return plan


class TrunkCache:
    """The frozen trunk's output per token sequence, computed the first time the sequence is seen and reused after:
    a reward model whose top blocks train (``rm.trainable_layers``) sees each comparison once per epoch, and from
    the second epoch on runs only its top blocks (:meth:`states`, then
    :func:`harness.judging.shared_trunk.rest_states`). Keyed by the sequence's attended token ids; a stored row holds
    only the attended positions ``[n_attended, H]``, so a sequence may come back in a batch of another width or
    padding (positions skip left padding; right padding is never attended by a real position). ``nbytes``: memory
    held; ``hits`` / ``misses``: sequences served from it / computed."""

    def __init__(self, n_shared: int):
        self.n_shared = n_shared
        self._rows: dict[tuple[int, ...], torch.Tensor] = {}
        self.hits = self.misses = self.nbytes = 0

    def states(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The trunk's output ``[B, T, H]`` for ``[B, T]`` inputs (zeros at unattended positions); rows not stored yet
        run through ``model``'s first ``n_shared`` layers in one forward, without autograd."""
        attended = attention_mask.bool()
        keys = [tuple(row[m].tolist()) for row, m in zip(input_ids, attended)]
        missing = [i for i, k in enumerate(keys) if k not in self._rows]
        if missing:
            with torch.no_grad():
                hidden = trunk_states(model, self.n_shared, input_ids[missing], attention_mask[missing])
            for j, i in enumerate(missing):
                row = hidden[j][attended[i]].clone()
                self._rows[keys[i]] = row
                self.nbytes += row.numel() * row.element_size()
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        first = self._rows[keys[0]]
        out = torch.zeros(*input_ids.shape, first.shape[-1], dtype=first.dtype, device=first.device)
        for i, k in enumerate(keys):
            out[i][attended[i]] = self._rows[k]
        return out
