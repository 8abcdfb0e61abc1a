"""JudgePanel.rewards: a list of (prompt, output) pairs is scored once per judge and read back afterwards."""

import pytest
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.devices import resolve
from harness.judging.panel import JudgePanel


class FakeJudge:
    """Scores len(output); counts its calls; "cuts" outputs longer than 5 characters."""

    def __init__(self, fingerprint="w1", max_length=512):
        self.fingerprint, self.max_length, self.max_prompt_length = fingerprint, max_length, 256
        self.chat_template, self.rendering = "auto", ("harness", "true")
        self.counts = {"scored": 0, "truncated": 0}
        self.calls = 0

    def score(self, prompts, outputs):
        self.calls += 1
        self.counts["scored"] += len(outputs)
        self.counts["truncated"] += sum(len(o) > 5 for o in outputs)
        return [float(len(o)) for o in outputs]


@pytest.fixture
def panel_with(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny"])

    def make(judge, cache=True, dtype="float32"):
        panel = JudgePanel(cfg.eval.judges, data_cfg=cfg.data, data_dir=None, chat_template="false", batch_size=2, seed=0,
                           run_dir=tmp_path, placement=resolve("cpu", dtype), cache_dir=tmp_path / "cache" if cache else None)
        panel._built["rm:helpful"] = judge
        return panel
    return make


def test_a_scored_list_is_read_back_with_its_truncation_count(panel_with, tmp_path):
    first = FakeJudge()
    assert make_rewards(panel_with(first)) == [2.0, 7.0]
    again = FakeJudge()
    panel = panel_with(again)
    assert make_rewards(panel) == [2.0, 7.0]
    assert again.calls == 0 and again.counts == {"scored": 2, "truncated": 1}  # the truncation warning still counts it
    assert panel.reward_cache == {"hits": 1, "misses": 0}
    assert len(list((tmp_path / "cache" / "judge_rewards").glob("helpful-*.json"))) == 1


@pytest.mark.parametrize("change", ["output", "prompt", "weights", "max_length", "dtype"])
def test_anything_the_scores_depend_on_misses(panel_with, change):
    make_rewards(panel_with(FakeJudge()))
    judge = FakeJudge(fingerprint="w2" if change == "weights" else "w1", max_length=64 if change == "max_length" else 512)
    panel = panel_with(judge, dtype="bfloat16" if change == "dtype" else "float32")
    prompts = ["p", "q!" if change == "prompt" else "q"]
    outputs = ["ok", "longer!" if change != "output" else "longer?"]
    panel.rewards("helpful", prompts, outputs)
    assert judge.calls == 1 and panel.reward_cache == {"hits": 0, "misses": 1}


def test_without_a_cache_dir_every_call_scores(panel_with, tmp_path):
    judge = FakeJudge()
    panel = panel_with(judge, cache=False)
    make_rewards(panel)
    make_rewards(panel)
    assert judge.calls == 2 and not (tmp_path / "cache").exists()


def test_bad_input_is_refused_before_the_cache(panel_with):
    with pytest.raises(ValueError, match=r"judge 'helpful'.*outputs\[1\]"):
        panel_with(FakeJudge()).rewards("helpful", ["p", "q"], ["ok", None])


def make_rewards(panel):
    return panel.rewards("helpful", ["p", "q"], ["ok", "longer!"])
