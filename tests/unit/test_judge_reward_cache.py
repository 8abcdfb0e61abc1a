"""JudgePanel.rewards: a list of (prompt, output) pairs is scored once per judge and read back afterwards."""

import pytest
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.devices import resolve
from harness.judging.panel import JudgePanel


class FakeJudge:
    """Scores len(output); records what it was asked to score; "cuts" outputs longer than 5 characters."""

    def __init__(self, fingerprint="w1", max_length=512, rendering="harness"):
        self.fingerprint, self.max_length, self.max_prompt_length = fingerprint, max_length, 256
        self.chat_template, self.rendering = "auto", (rendering, "true")
        self.counts = {"scored": 0, "truncated": 0}
        self.calls = 0
        self.asked = []

    def score(self, prompts, outputs):
        self.calls += 1
        self.asked.append(list(outputs))
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


def test_without_a_cache_dir_nothing_is_written_and_a_run_scores_a_pair_once(panel_with, tmp_path):
    judge = FakeJudge()
    panel = panel_with(judge, cache=False)
    assert make_rewards(panel) == make_rewards(panel) == [2.0, 7.0]
    assert judge.calls == 1 and judge.counts["scored"] == 4 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("cache", [True, False])
def test_within_a_run_only_new_pairs_are_scored(panel_with, cache):
    """The win rate scores a policy's outputs; Likert's list holds them again beside the closed-domain ones."""
    judge = FakeJudge()
    panel = panel_with(judge, cache=cache)
    assert panel.rewards("helpful", ["p", "q"], ["ok", "fine"]) == [2.0, 4.0]
    assert panel.rewards("helpful", ["q", "r", "r"], ["fine", "new one", "new one"]) == [4.0, 7.0, 7.0]
    assert judge.asked == [["ok", "fine"], ["new one"]]  # the repeat inside the list too: once
    assert judge.counts == {"scored": 5, "truncated": 1}  # every text counts as scored; the cut one once, when scored


def test_a_judge_that_may_cut_texts_scores_every_list_in_full(panel_with):
    """Only a harness-rendered judge never cuts; another rendering counts its cuts per text scored."""
    judge = FakeJudge(rendering="chat")
    panel = panel_with(judge, cache=False)
    panel.rewards("helpful", ["p"], ["longer!"])
    panel.rewards("helpful", ["p"], ["longer!"])
    assert judge.calls == 2 and judge.counts == {"scored": 2, "truncated": 2}


def test_bad_input_is_refused_before_the_cache(panel_with):
    with pytest.raises(ValueError, match=r"judge 'helpful'.*outputs\[1\]"):
        panel_with(FakeJudge()).rewards("helpful", ["p", "q"], ["ok", None])


def make_rewards(panel):
    return panel.rewards("helpful", ["p", "q"], ["ok", "longer!"])
