"""EvalContext.lm_eval serves a smaller zero-shot limit from a larger one of the same run (the alignment tax's
TruthfulQA MC2 on 40 items after TruthfulQA's on 100) instead of running lm-eval again, only when that is exact."""

import pytest
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.evals.context import EvalContext
from harness.evals.policies import parse_policies

pytestmark = pytest.mark.integration  # loads the tiny checkpoint


@pytest.fixture
def ctx_and_calls(tmp_path, tiny_dir, monkeypatch):
    calls = []

    def fake_run_lm_eval(model, tok, tasks, *, data_dir, limit, num_fewshot=None, batch_size=8, seed=0):
        calls.append((tuple(tasks), limit, num_fewshot))
        items = [{"task": t, "doc_id": d, "acc": (d % 3) / 2, "bleu_like": 1.0} for t in tasks for d in range(limit)]
        aggregates = {t: {"acc": sum((d % 3) / 2 for d in range(limit)) / limit,
                          **({"bleu_like": 0.25} if t == "corpus_task" else {"bleu_like": 1.0})} for t in tasks}
        return aggregates, items

    monkeypatch.setattr("harness.evals.lm_eval_runner.run_lm_eval", fake_run_lm_eval)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", f"model.cache_dir={tmp_path / 'cache'}"])
    ctx = EvalContext(cfg.model, cfg.data, cfg.eval, cfg.evals, parse_policies({"p": tiny_dir}), tmp_path / "run", "r", 0)
    return ctx, calls


def test_a_smaller_zero_shot_limit_is_cut_from_the_larger_run(ctx_and_calls):
    ctx, calls = ctx_and_calls
    big = ctx.lm_eval("p", ["mc2_like"], 6)
    small = ctx.lm_eval("p", ["mc2_like"], 4)
    assert calls == [(("mc2_like",), 6, None)]
    assert small == big[:4]
    # items 0..3 have acc 0, .5, 1, 0: mean 0.375 (the 6-item run's mean is 0.5)
    assert ctx.lm_eval_aggregates[("p", "mc2_like", 4, None)] == {"acc": 0.375, "bleu_like": 1.0}
    assert ctx.lm_eval_aggregates[("p", "mc2_like", 6, None)]["acc"] == 0.5


def test_no_cut_when_an_aggregate_is_not_the_items_mean_or_shots_or_a_larger_limit(ctx_and_calls):
    ctx, calls = ctx_and_calls
    ctx.lm_eval("p", ["corpus_task"], 6)
    ctx.lm_eval("p", ["corpus_task"], 4)  # bleu_like 0.25 is no mean of its items (1.0): lm-eval runs again
    ctx.lm_eval("p", ["mc2_like"], 6, num_fewshot=2)
    ctx.lm_eval("p", ["mc2_like"], 4, num_fewshot=2)  # few-shot items depend on the sampler's draws before them
    ctx.lm_eval("p", ["mc2_like"], 8)  # more than was run
    assert calls == [(("corpus_task",), 6, None), (("corpus_task",), 4, None), (("mc2_like",), 6, 2),
                     (("mc2_like",), 4, 2), (("mc2_like",), 8, None)]
