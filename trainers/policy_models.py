"""The policy-side modules of PPO (:mod:`trainers.ppo`): a causal LM with a shared scalar value head
(``ppo.value_head=shared``) and the reference policy of a LoRA policy (the policy with its adapters disabled)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PolicyValueOutput:
    """``logits [B, T, V]`` of the causal LM and ``values [B, T]`` of the shared value head."""

    logits: torch.Tensor
    values: torch.Tensor


class PolicyWithValueHead(torch.nn.Module):
    """A causal LM with a scalar value head on its final hidden states (``value_head=shared``).

    One forward of the trunk gives both the next-token logits and V(s) at every position:
    ``values = w . h_T + b`` on the last (final-norm) hidden state ``h_T [B, T, H]``. The head
    starts at zero (w = 0, b = 0), so every first value estimate is 0 and the early value loss
    does not push noise into the shared trunk. ``policy`` stays a plain causal LM (saved alone).
    """

    def __init__(self, policy: torch.nn.Module):
        super().__init__()
        self.policy = policy
        hidden = policy.get_output_embeddings().in_features
        self.value_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None,
                **lm_kwargs) -> PolicyValueOutput:
        """``input_ids``/``attention_mask``/``position_ids`` ``[B, T]`` -> logits ``[B, T, V]``, values ``[B, T]`` (fp32).

        ``lm_kwargs`` go to the causal LM (e.g. ``logits_to_keep``, which trims the logits only:
        the values still cover every position).
        """
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, output_hidden_states=True,
                          **lm_kwargs)
        return PolicyValueOutput(out.logits, self.value_head(out.hidden_states[-1]).squeeze(-1).float())


class ReferenceWithoutAdapters(torch.nn.Module):
    """The reference policy of a LoRA policy: the policy's own forward with its adapters disabled (peft
    ``disable_adapter``) and in eval mode, i.e. the frozen base weights pi_SFT. It holds no parameters
    of its own (the policy is kept outside the module tree, so nothing is moved, prepared or trained twice)."""

    def __init__(self, policy) -> None:
        super().__init__()
        self._policy = [policy]

    def forward(self, **kwargs):
        policy = self._policy[0]
        was_training = policy.training
        policy.eval()
        try:
            with policy.disable_adapter():
                return policy(**kwargs)
        finally:
            policy.train(was_training)
