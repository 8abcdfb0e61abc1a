"""Pure pieces behind the trainer options: length-grouped batching, the ptx schedule, dropout fields, tracker config."""

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, MambaConfig, OPTConfig

from harness import data as D
from harness.models import dropout_fields, load_tokenizer
from harness.prompting import encode_pair
from trainers.common import batches, length_grouped_batches, padding_stats, plan_epoch
from trainers.episodes import ptx_sequences_for_minibatch
from trainers.tracking import Tracking, flatten_config, make_accelerator, scalars


def _padded(lengths, index_batches):
    return sum(padding_stats([lengths[i] for i in b])["padded_tokens"] for b in index_batches)


@pytest.fixture(scope="module")
def real_lengths(data_dir):
    """Token lengths as the trainers encode them: SFT demonstrations and hh-rlhf comparisons (longest completion)."""
    tok = load_tokenizer(f"{data_dir}/gpt2_tokenizer")
    sft = [len(encode_pair(d.prompt, d.completion, tok, 256, 128, "false").input_ids) for d in D.load_demonstrations(data_dir)]
    rm = [max(len(encode_pair(c.prompt, y, tok, 256, 128, "false").input_ids) for y in c.completions)
          for c in D.load_hh_rlhf(data_dir, ["helpful-base"])[:400]]
    return {"sft": (sft, 8), "rm": (rm, 4)}


@pytest.mark.parametrize("name", ["sft", "rm"])
def test_length_grouping_cuts_padding_on_real_lengths(real_lengths, name):
    lengths, bs = real_lengths[name]
    real = sum(lengths)
    for seed in range(3):
        grouped = length_grouped_batches(lengths, bs, random.Random(seed))
        shuffled = batches(list(range(len(lengths))), bs, random.Random(seed))
        assert Counter(i for b in grouped for i in b) == Counter(range(len(lengths)))  # every example exactly once
        assert len(grouped) == len(shuffled) == -(-len(lengths) // bs)
        waste_grouped, waste_random = _padded(lengths, grouped) - real, _padded(lengths, shuffled) - real
        assert 0 <= waste_grouped < 0.25 * waste_random, (name, seed, waste_grouped, waste_random)


def test_length_grouping_is_random_across_epochs_and_seeded():
    draw = random.Random(1)
    lengths = [draw.randint(5, 300) for _ in range(1000)]
    rng = random.Random(0)
    first, second = length_grouped_batches(lengths, 4, rng), length_grouped_batches(lengths, 4, rng)
    assert first != second  # a new order every epoch
    assert first == length_grouped_batches(lengths, 4, random.Random(0))  # reproducible from the seed
    # mega-batches of 50 x 4: batches are sorted within 200 random examples, so a batch's spread is small
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first]
    assert sum(spread) / len(spread) < 0.1 * (max(lengths) - min(lengths))


def test_plan_epoch_groups_by_length_and_checks_lengths():
    items = ["a", "bbb", "cc", "dddd", "e"]
    lengths = [len(x) for x in items]
    out = [mb for step in plan_epoch(len(items), 2, 1, 1, random.Random(0), lengths) for mb in step[0]]
    assert sorted(i for b in out for i in b) == list(range(5))
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 2 for b in out)
    assert out == length_grouped_batches(lengths, 2, random.Random(0))
    with pytest.raises(ValueError, match="4 lengths for 5 items"):
        plan_epoch(len(items), 2, 1, 1, random.Random(0), lengths[:4])
    with pytest.raises(ValueError, match="must be >= 1"):
        length_grouped_batches(lengths, 0, random.Random(0))


def test_padding_stats_by_hand():
    assert padding_stats([3, 5, 2]) == {"tokens": 10, "padded_tokens": 15}
    assert padding_stats([]) == {"tokens": 0, "padded_tokens": 0}


@pytest.mark.parametrize("ratio,m", [(0.75, 2), (8.0, 4), (0.3, 1), (0.1, 8), (2.5, 3)])
def test_ptx_schedule_consumes_ratio_sequences_per_episode(ratio, m):
    counts = [ptx_sequences_for_minibatch(ratio, m, i) for i in range(60)]
    for n in range(1, 61):  # after any n minibatches: floor(ratio x episodes) sequences, never more
        assert -1e-9 < ratio * m * n - sum(counts[:n]) < 1.0
    assert max(counts) - min(counts) <= 1  # spread evenly, never bunched


def test_ptx_schedule_by_hand_and_errors():
    assert [ptx_sequences_for_minibatch(0.75, 2, i) for i in range(4)] == [1, 2, 1, 2]
    # 0.8 per minibatch: cumulative 0.8, 1.6, 2.4, 3.2, 4.0 (exact, not 3.9999...) -> floors 0, 1, 2, 3, 4
    assert [ptx_sequences_for_minibatch(0.1, 8, i) for i in range(5)] == [0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="ratio > 0"):
        ptx_sequences_for_minibatch(0.0, 2, 0)


def test_dropout_fields_per_architecture():
    assert dropout_fields(GPT2Config()) == ["resid_pdrop"]  # residual dropout proper (the paper's)
    assert dropout_fields(GPTNeoXConfig()) == ["hidden_dropout"]
    assert dropout_fields(OPTConfig()) == ["dropout"]
    assert dropout_fields(LlamaConfig()) == ["attention_dropout"]  # Llama has no residual dropout: attention dropout
    with pytest.raises(ValueError, match="MambaConfig .*has no dropout field"):
        dropout_fields(MambaConfig())


@dataclass
class _Inner:
    lr: float = 1e-5
    targets: list[str] = field(default_factory=lambda: ["q", "v"])


def test_flatten_config_and_scalars():
    flat = flatten_config({"sft": _Inner(), "seed": 3, "init_from": None, "nested": {"a": {"b": True}}})
    assert flat == {"sft.lr": 1e-5, "sft.targets": "['q', 'v']", "seed": 3, "init_from": None, "nested.a.b": True}
    assert scalars({"step": 1, "loss": 0.5, "ptx_loss": None, "flag": True, "name": "x"}) == {"step": 1, "loss": 0.5}


def test_unknown_or_missing_tracker_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown tracker 'tensorbored'"):
        make_accelerator(Tracking(log_with=["tensorbored"]))
    monkeypatch.setattr("trainers.tracking.get_available_trackers", lambda: [])
    with pytest.raises(ValueError, match=r"tracker 'tensorboard' is not installed \(pip install 'instructgpt-harness\[trackers\]'\)"):
        make_accelerator(Tracking(log_with=["tensorboard"], logging_dir="unused"))


def test_stage_tracking_names_one_folder_per_stage(tmp_path):
    from harness.config import TrackingConfig
    from trainers.tracking import stage_tracking

    assert stage_tracking(TrackingConfig(), tmp_path / "checkpoints" / "sft", "sft", {}) is None  # nothing configured
    t = stage_tracking(TrackingConfig(log_with=["tensorboard"]), tmp_path / "checkpoints" / "sft", "sft", {"seed": 1})
    assert t.logging_dir == str(tmp_path / "checkpoints" / "trackers" / "sft") and t.run_name == "sft" and t.config == {"seed": 1}
    t = stage_tracking(TrackingConfig(log_with=["wandb"], project="p", dir=str(tmp_path / "tb")), tmp_path / "x" / "rm", "judge", {})
    assert (t.logging_dir, t.project, t.log_with) == (str(tmp_path / "tb" / "judge"), "p", ["wandb"])
