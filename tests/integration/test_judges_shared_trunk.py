"""Judges that share a frozen trunk (the default judges: one base, top blocks trained) read each text's lower layers
once, and each gives the scores it gives alone (tiny harness-rendered Llama reward models)."""

import pytest
import torch

from tests.integration.test_lm_eval_hellaswag import DATA_DIR, _hf_cache  # noqa: F401

pytestmark = pytest.mark.integration

PROMPTS = ["Name a colour.", "What is 2 + 2?", "Write a haiku about rain, please, in five words or so.", "Hi"]
OUTPUTS = ["Blue.", "4", "Rain taps on the roof, soft and slow all night.", ""]


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    """Folders of three reward models from one random 4-layer base: ``top1`` (its last layer and head changed),
    ``top2`` (its last two layers and head changed) and ``other`` (its embeddings changed)."""
    import transformers

    from harness.models import REWARD_RECORD

    tok = transformers.AutoTokenizer.from_pretrained(str(DATA_DIR / "gpt2_tokenizer"))
    tok.pad_token = tok.eos_token
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                      num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id)
    setattr(config, REWARD_RECORD, {"chat_template": "false"})
    root = tmp_path_factory.mktemp("trunk")
    out = {}
    for name, seed, change in (("top1", 1, ["layers.3", "score"]), ("top2", 2, ["layers.2", "layers.3", "score"]),
                               ("other", 3, ["embed_tokens", "score"])):
        torch.manual_seed(0)
        model = transformers.LlamaForSequenceClassification(config).eval()
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if any(c in n for c in change):
                    p.add_(torch.randn(p.shape, generator=g) * 0.5)
        setattr(model.config, REWARD_RECORD, {"chat_template": "false", "centring_offset": 0.1 * seed})  # records differ
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = str(root / name)
    return out


def _load(path):
    from harness.models import load_scalar_model, load_tokenizer

    return load_scalar_model(path), load_tokenizer(path)


def test_shared_layers_counts_the_equal_leading_layers(judges):
    from harness.judging.shared_trunk import shared_layers

    top1, top2, other = (_load(judges[n])[0] for n in ("top1", "top2", "other"))
    assert shared_layers(top1, top2) == 2
    assert shared_layers(top1, top1) == 4
    assert shared_layers(top1, other) == 0  # different embeddings
    eps, _ = _load(judges["top2"])
    eps.config.rms_norm_eps = 1e-3  # the same weights computing something else
    assert shared_layers(top1, eps) == 0


def test_scores_sharing_the_trunk_equal_each_judge_alone_and_the_trunk_runs_once(judges):
    from harness.judging.reward_model import reward_scores, reward_scores_sharing_trunk

    (top1, tok), (top2, _) = _load(judges["top1"]), _load(judges["top2"])
    alone = [reward_scores(m, tok, PROMPTS, OUTPUTS, batch_size=3) for m in (top1, top2)]
    calls = {"top1": 0, "top2": 0}
    hooks = [m.model.layers[0].register_forward_hook(lambda *a, n=n: calls.__setitem__(n, calls[n] + 1))
             for n, m in (("top1", top1), ("top2", top2))]
    try:
        together = reward_scores_sharing_trunk([top1, top2], tok, PROMPTS, OUTPUTS, n_shared=2, template="false", batch_size=3)
    finally:
        for h in hooks:
            h.remove()
    assert together[0] == pytest.approx(alone[0], abs=1e-6)
    assert together[1] == pytest.approx(alone[1], abs=1e-6)
    assert calls == {"top1": 2, "top2": 0}  # two batches (3 + 1 texts); top2's first layer never ran
    assert len(top2.model.layers) == 4  # its stack is whole again


def test_panel_scores_judges_together_only_when_they_share_a_trunk(judges, tmp_path):
    from hydra import compose, initialize_config_dir

    from harness.cli import CONF_DIR
    from harness.devices import resolve
    from harness.judging.panel import JudgePanel

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", f"+eval.judges.reward_models.a={judges['top1']}",
                                         f"+eval.judges.reward_models.b={judges['top2']}",
                                         f"+eval.judges.reward_models.c={judges['other']}"])
    panel = JudgePanel(cfg.eval.judges, data_cfg=cfg.data, data_dir=None, chat_template="false", batch_size=3, seed=0,
                       run_dir=tmp_path, placement=resolve("cpu", "float32"), cache_dir=tmp_path / "cache")
    alone = {n: panel.reward_judge(n).score(PROMPTS, OUTPUTS) for n in ("a", "b", "c")}
    ran = {n: 0 for n in ("a", "b", "c")}
    for n in ("a", "b", "c"):
        panel.reward_judge(n).model.model.layers[0].register_forward_hook(lambda *a, n=n: ran.__setitem__(n, ran[n] + 1))
    got = panel.rewards_of(["a", "b", "c"], PROMPTS, OUTPUTS)
    for n in ("a", "b", "c"):
        assert got[n] == pytest.approx(alone[n], abs=1e-6)
    assert ran == {"a": 2, "b": 0, "c": 2}  # c shares nothing with a: scored alone
    assert panel._shared_layers("a", "b") == 2 and panel._shared_layers("a", "c") == 0
    assert panel.reward_cache == {"hits": 0, "misses": 3}
    assert {n: panel.reward_judge(n).counts["scored"] for n in ("a", "b", "c")} == {"a": 8, "b": 8, "c": 8}
    again = panel.rewards_of(["a", "b"], PROMPTS, OUTPUTS)  # now from the reward cache: nothing runs
    assert again == {"a": got["a"], "b": got["b"]} and ran == {"a": 2, "b": 0, "c": 2}
