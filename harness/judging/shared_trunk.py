"""Reward models that share a frozen trunk read a text's lower layers once.

The harness's default judges (helpful, harmless) are trained from one base model with only their top blocks
trainable (``judge.trainable_layers``), so their embeddings and lower decoder layers are the base's, bit for bit.
Scoring the same (prompt, output) pairs with both, those layers would run twice on the same tokens. Here the
first model runs whole and its hidden state after the last shared layer is kept; every other model runs only its
own layers on it (its decoder stack's ``layers`` cut to the rest, fed ``inputs_embeds``: the same causal mask and
rotary positions, built from the same attention mask and position ids). The numbers are those of each model run
alone on the same batches (tested): the shared layers are the same weights on the same inputs.

PPO uses the same two halves (:func:`trunk_states`, :func:`rest_states`) when the policy trains only its top blocks
(``ppo.trainable_layers``): the reference policy, value model, reward model and gold reward that share the policy's
frozen lower layers read them once per rollout (trainers/ppo.py).

Only for decoder stacks with ``embed_tokens`` and a ``layers`` list of full-attention layers (Llama-style: SmolLM2,
Llama, Qwen2 without sliding windows, Mistral without); anything else shares nothing (:func:`shared_layers` = 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

# config entries a decoder layer's output depends on beyond its parameters (their shapes cover the sizes)
_COMPUTE_KEYS = ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps",
                 "rope_theta", "rope_scaling", "rope_parameters", "attention_bias", "mlp_bias", "max_position_embeddings",
                 "layer_types", "sliding_window", "use_sliding_window", "_attn_implementation")


def decoder_stack(model) -> Any | None:
    """The decoder stack (``embed_tokens``, ``layers``, ``norm``) of a scalar-head model or causal LM (unwrapped from
    accelerate/DDP), or ``None``."""
    from accelerate.utils import extract_model_from_parallel

    stack = getattr(extract_model_from_parallel(model), "base_model", None)
    ok = stack is not None and all(hasattr(stack, a) for a in ("embed_tokens", "layers", "norm"))
    return stack if ok else None


def _full_attention_only(config) -> bool:
    types = getattr(config, "layer_types", None)
    return types is None or all(t == "full_attention" for t in types)


@torch.no_grad()
def shared_layers(a, b, extra_rows: bool = False) -> int:
    """How many leading decoder layers models ``a`` and ``b`` (scalar-head models or causal LMs) share (equal
    parameters, ``torch.equal``), with equal embeddings, the same stack class, equal settings a layer computes with
    (:data:`_COMPUTE_KEYS`; names, labels and reward records may differ) and only full-attention layers; 0 when any of
    that fails. ``extra_rows``: ``b``'s embedding may have rows after ``a``'s (a reward model's added pad token,
    :func:`harness.models.with_reward_pad`), the rest equal: valid for inputs tokenized for ``a``."""
    sa, sb = decoder_stack(a), decoder_stack(b)
    if sa is None or sb is None or type(sa) is not type(sb) or len(sa.layers) != len(sb.layers):
        return 0
    if any(getattr(a.config, k, None) != getattr(b.config, k, None) for k in _COMPUTE_KEYS) or not _full_attention_only(a.config):
        return 0
    ea, eb = sa.embed_tokens.weight, sb.embed_tokens.weight
    if extra_rows and eb.shape[0] > ea.shape[0]:
        eb = eb[: ea.shape[0]]
    if ea.shape != eb.shape or not torch.equal(ea, eb):
        return 0
    k = 0
    for la, lb in zip(sa.layers, sb.layers):
        pa, pb = la.state_dict(), lb.state_dict()
        if pa.keys() != pb.keys() or not all(torch.equal(pa[n], pb[n]) for n in pa):
            break
        k += 1
    return k


@contextmanager
def _cut(stack, layers: list, norm: torch.nn.Module | None = None) -> Iterator[None]:
    """``stack`` with only ``layers`` (and ``norm`` in place of its final norm, if given) while the block runs."""
    kept_layers, kept_norm = stack.layers, stack.norm
    stack.layers = torch.nn.ModuleList(layers)
    if norm is not None:
        stack.norm = norm
    try:
        yield
    finally:
        stack.layers, stack.norm = kept_layers, kept_norm


def _check_n_shared(stack, n_shared: int) -> None:
    if stack is None:
        raise ValueError("shared trunk: the model has no Llama-style decoder stack (embed_tokens, layers, norm)")
    if not 1 <= n_shared <= len(stack.layers):
        raise ValueError(f"n_shared must be in 1..{len(stack.layers)}, got {n_shared}")


def trunk_states(model, n_shared: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state ``[B, T, H]`` after the first ``n_shared`` decoder layers of ``model`` on ``input_ids`` /
    ``attention_mask`` ``[B, T]`` (positions skip left padding, :func:`harness.models.position_ids`): the input of
    layer ``n_shared``, not normed. Runs under the caller's grad mode. Raises ``ValueError`` for ``n_shared``
    outside ``1..number of layers`` or a model without a Llama-style stack."""
    from harness.models import position_ids

    stack = decoder_stack(model)
    _check_n_shared(stack, n_shared)
    with _cut(stack, list(stack.layers)[:n_shared], torch.nn.Identity()):
        return stack(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                     use_cache=False).last_hidden_state


def rest_states(model, n_shared: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``model``'s final (normed) hidden state ``[B, T, H]``, running only its layers from ``n_shared`` on, on
    ``hidden`` (:func:`trunk_states` of a model whose first ``n_shared`` layers it shares, same ``attention_mask``):
    the same causal mask and rotary positions as a whole forward. Runs under the caller's grad mode, so gradients
    reach ``model``'s upper layers and norm. Raises ``ValueError`` as :func:`trunk_states`."""
    from harness.models import position_ids

    stack = decoder_stack(model)
    _check_n_shared(stack, n_shared)
    with _cut(stack, list(stack.layers)[n_shared:]):
        return stack(inputs_embeds=hidden, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                     use_cache=False).last_hidden_state


def scores_sharing_trunk(models: list, n_shared: int, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         scores_of) -> list[torch.Tensor]:
    """Per model, ``scores_of(model, out_hidden [B, T, H]) -> [B]`` where ``out_hidden`` is the model's final
    (normed) hidden state on ``input_ids`` / ``attention_mask`` ([B, T], right-padded); ``models[1:]`` share the
    first ``n_shared`` decoder layers of ``models[0]`` (:func:`shared_layers`), which run once
    (:func:`trunk_states`, then :func:`rest_states` per model). Raises ``ValueError`` for ``n_shared`` outside
    ``1..number of layers``."""
    hidden = trunk_states(models[0], n_shared, input_ids, attention_mask)
    return [scores_of(model, rest_states(model, n_shared, hidden, attention_mask)) for model in models]
