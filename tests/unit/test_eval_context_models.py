"""EvalContext.model keeps policies loaded within a weight budget and loads a policy's tokenizer once per run."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.evals import context as C
from harness.evals.policies import parse_policies

pytestmark = pytest.mark.integration  # parses the tiny checkpoint folder


@pytest.fixture
def ctx_and_loads(tmp_path, tiny_dir, monkeypatch):
    loads = {"policy": [], "tokenizer": []}

    def fake_policy(path, device, dtype):
        loads["policy"].append(path)
        return torch.nn.Linear(256, 256)  # 65,792 float32 parameters: 263,168 bytes

    def fake_tokenizer(path):
        loads["tokenizer"].append(path)
        return object()

    monkeypatch.setattr("harness.models.load_policy", fake_policy)
    monkeypatch.setattr("harness.models.load_tokenizer", fake_tokenizer)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", f"model.cache_dir={tmp_path / 'cache'}"])
    ctx = C.EvalContext(cfg.model, cfg.data, cfg.eval, cfg.evals, parse_policies({"a": tiny_dir, "b": tiny_dir, "c": tiny_dir}),
                        tmp_path / "run", "r", 0)
    return ctx, loads


def test_policies_within_the_budget_stay_loaded(ctx_and_loads, monkeypatch):
    ctx, loads = ctx_and_loads
    monkeypatch.setattr(C, "LOADED_POLICIES_BYTES", 3 * 263_168)
    for _ in range(3):  # three evals, each visiting every policy
        models = [ctx.model(n)[0] for n in ("a", "b", "c")]
    assert len(loads["policy"]) == 3 and len(loads["tokenizer"]) == 3
    assert ctx.model("a")[0] is models[0]


def test_over_the_budget_the_least_recently_used_is_freed_and_the_tokenizer_kept(ctx_and_loads, monkeypatch):
    ctx, loads = ctx_and_loads
    monkeypatch.setattr(C, "LOADED_POLICIES_BYTES", 2 * 263_168)
    for n in ("a", "b", "c", "a"):
        ctx.model(n)
    assert list(ctx._loaded) == ["c", "a"]  # b was freed for a (least recently used), a for c before that
    assert len(loads["policy"]) == 4 and len(loads["tokenizer"]) == 3
    monkeypatch.setattr(C, "LOADED_POLICIES_BYTES", 100)  # smaller than one policy: one at a time, as before
    ctx.model("b")
    assert list(ctx._loaded) == ["b"]
