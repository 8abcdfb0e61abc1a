"""Shared fixtures: the offline data mirror, an isolated HF cache, and a tiny model built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory):
    """The same environment for session- and module-scoped fixtures, which run before function-scoped ones:
    the data mirror, and a harness cache (default judges, judge validations, lm-eval results) in the session's
    temp dir, never in the checkout. Tests that need a cache of their own set HARNESS_CACHE_DIR themselves."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_DATA_DIR", str(DATA_DIR))
        mp.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness_cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def _isolated_hf(tmp_path_factory, monkeypatch):
    """No test writes to ~/.cache or reaches for the hub."""
    home = tmp_path_factory.getbasetemp() / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness_cache"))


@pytest.fixture(scope="session")
def data_dir() -> str:
    if not (DATA_DIR / "hh_rlhf").is_dir():
        pytest.fail(f"offline data mirror not found at {DATA_DIR}: set HARNESS_DATA_DIR")
    return str(DATA_DIR)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, data_dir) -> str:
    """A saved model=tiny checkpoint (random Llama + GPT-2 tokenizer)."""
    from harness.models import ModelConfig, materialize_base

    out = tmp_path_factory.mktemp("tiny") / "base"
    return materialize_base(ModelConfig(name="tiny"), out, data_dir, seed=0)


@pytest.fixture(scope="module")
def tiny_lm():
    """A small random Llama with the GPT-2 tokenizer, in memory, for lm-eval task tests: (model, tokenizer)."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(DATA_DIR / "gpt2_tokenizer"))
    tok.pad_token = tok.eos_token
    config = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval(), tok
