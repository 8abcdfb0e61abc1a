"""Reward models that share a frozen trunk read a text's lower layers once.

The harness's default judges (helpful, harmless) are trained from one base model with only their top blocks
trainable (``judge.trainable_layers``), so their embeddings and lower decoder layers are the base's, bit for bit.
Scoring the same (prompt, output) pairs with both, those layers would run twice on the same tokens. Here the
first model runs whole and its hidden state after the last shared layer is kept; every other model runs only its
own layers on it (its decoder stack's ``layers`` cut to the rest, fed ``inputs_embeds``: the same causal mask and
rotary positions, built from the same attention mask and position ids). The numbers are those of each model run
alone on the same batches (tested): the shared layers are the same weights on the same inputs.

Only for decoder stacks with ``embed_tokens`` and a ``layers`` list of full-attention layers (Llama-style: SmolLM2,
Llama, Qwen2 without sliding windows, Mistral without); anything else shares nothing (:func:`shared_layers` = 0).
"""

from __future__ import annotations

from typing import Any

import torch

# config entries a decoder layer's output depends on beyond its parameters (their shapes cover the sizes)
_COMPUTE_KEYS = ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps",
                 "rope_theta", "rope_scaling", "rope_parameters", "attention_bias", "mlp_bias", "max_position_embeddings",
                 "layer_types", "sliding_window", "use_sliding_window", "_attn_implementation")


def decoder_stack(model) -> Any | None:
    """The decoder stack (``embed_tokens``, ``layers``, ``norm``) of a scalar-head model, or ``None``."""
    stack = getattr(model, "base_model", None)
    ok = stack is not None and all(hasattr(stack, a) for a in ("embed_tokens", "layers", "norm"))
    return stack if ok else None


def _full_attention_only(config) -> bool:
    types = getattr(config, "layer_types", None)
    return types is None or all(t == "full_attention" for t in types)


@torch.no_grad()
def shared_layers(a, b) -> int:
    """How many leading decoder layers scalar-head models ``a`` and ``b`` share (equal parameters, ``torch.equal``),
    with equal embeddings, the same stack class, equal settings a layer computes with (:data:`_COMPUTE_KEYS`; names,
    labels and reward records may differ) and only full-attention layers; 0 when any of that fails."""
    sa, sb = decoder_stack(a), decoder_stack(b)
    if sa is None or sb is None or type(sa) is not type(sb) or len(sa.layers) != len(sb.layers):
        return 0
    if any(getattr(a.config, k, None) != getattr(b.config, k, None) for k in _COMPUTE_KEYS) or not _full_attention_only(a.config):
        return 0
    if not torch.equal(sa.embed_tokens.weight, sb.embed_tokens.weight):
        return 0
    k = 0
    for la, lb in zip(sa.layers, sb.layers):
        pa, pb = la.state_dict(), lb.state_dict()
        if pa.keys() != pb.keys() or not all(torch.equal(pa[n], pb[n]) for n in pa):
            break
        k += 1
    return k


def scores_sharing_trunk(models: list, n_shared: int, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         scores_of) -> list[torch.Tensor]:
    """Per model, ``scores_of(model, out_hidden [B, T, H]) -> [B]`` where ``out_hidden`` is the model's final
    (normed) hidden state on ``input_ids`` / ``attention_mask`` ([B, T], right-padded); ``models[1:]`` share the
    first ``n_shared`` decoder layers of ``models[0]`` (:func:`shared_layers`), which run once. Positions skip
    left padding as :func:`harness.models.position_ids` does. Raises ``ValueError`` for ``n_shared`` outside
    ``1..number of layers``."""
    from harness.models import position_ids

    first = decoder_stack(models[0])
    if not 1 <= n_shared <= len(first.layers):
        raise ValueError(f"n_shared must be in 1..{len(first.layers)}, got {n_shared}")
    positions = position_ids(attention_mask)
    kept: dict[str, torch.Tensor] = {}

    def keep(module, args, output):
        kept["hidden"] = output[0] if isinstance(output, tuple) else output

    hook = first.layers[n_shared - 1].register_forward_hook(keep)
    try:
        out = [scores_of(models[0], first(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions)
                         .last_hidden_state)]
    finally:
        hook.remove()
    for model in models[1:]:
        stack = decoder_stack(model)
        layers = stack.layers
        stack.layers = torch.nn.ModuleList(list(layers)[n_shared:])
        try:
            hidden = stack(inputs_embeds=kept["hidden"], attention_mask=attention_mask, position_ids=positions).last_hidden_state
        finally:
            stack.layers = layers
        out.append(scores_of(model, hidden))
    return out
