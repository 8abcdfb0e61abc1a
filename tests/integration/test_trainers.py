"""Each trainer on model=tiny: it learns what it should, and logs and saves what it claims."""

import math

import pytest
import torch

from harness.config import PPOConfig, RMConfig, SFTConfig
from harness.io import read_jsonl
from harness.models import load_policy, load_scalar_model, load_tokenizer
from harness.records import Comparison, Demonstration, PretrainText, Prompt
from trainers.common import freeze_lower_layers
from trainers.episodes import response_mask
from trainers.ppo import PPOTrainer
from trainers.reward_model import RewardModelTrainer
from trainers.sft import SFTTrainer

pytestmark = pytest.mark.integration


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_sft_loss_falls_and_every_parameter_changes(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    model = load_policy(tiny_dir)
    before = _params(model)
    demos = [Demonstration(str(i), f"Repeat the word {w}.", f"{w} {w} {w}", "test") for i, w in enumerate(["apple", "river", "stone", "cloud"])]
    cfg = SFTConfig(lr=1e-2, epochs=8, batch_size=2, warmup_ratio=0.0, max_length=48, max_prompt_length=32)
    trainer = SFTTrainer(cfg, model, tok, demos, demos[:2], chat_template="false", seed=0)
    result = trainer.train(tmp_path / "sft", log_path=tmp_path / "log.jsonl")
    assert len(result.train_losses) == 16 and all(math.isfinite(x) for x in result.train_losses)
    assert result.train_losses[-1] < 0.5 * result.train_losses[0]
    assert [r["step"] for r in read_jsonl(tmp_path / "log.jsonl")] == list(range(1, 17))
    assert math.isfinite(result.val_loss) and result.val_loss < result.val_loss_before
    after = dict(trainer.accelerator.unwrap_model(trainer.model).named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n].detach())]
    assert unchanged == []


def test_sft_loss_ignores_prompt_tokens(tiny_dir):
    """Changing only the prompt's wording must not change which tokens are scored."""
    tok = load_tokenizer(tiny_dir)
    cfg = SFTConfig(max_length=64, max_prompt_length=48)
    demos = [Demonstration("a", "Short prompt.", "same answer", "t"), Demonstration("b", "A much longer prompt with many words.", "same answer", "t")]
    trainer = SFTTrainer(cfg, load_policy(tiny_dir), tok, demos, [], chat_template="false")
    assert [sum(p.completion_mask) for p in trainer.train_pairs] == [len(tok(" same answer")["input_ids"]) + 1] * 2


def _separable_comparisons(n, k=3):
    """K completions per prompt whose quality is the number of times 'good' appears (best first)."""
    comps = []
    for i in range(n):
        completions = tuple(" ".join(["good"] * (k - j) + ["bad"] * j) for j in range(k))
        comps.append(Comparison(str(i), f"\n\nHuman: question {i}?\n\nAssistant:", completions, tuple(range(k)), "test"))
    return comps


def test_reward_model_learns_a_ranking_and_normalises_to_demos(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    cfg = RMConfig(lr=3e-3, epochs=6, batch_size=4, warmup_ratio=0.0, max_length=48, max_prompt_length=24)
    trainer = RewardModelTrainer(cfg, load_scalar_model(tiny_dir), tok, _separable_comparisons(16), _separable_comparisons(8),
                                 chat_template="false", seed=0)
    acc_before = trainer.evaluate().accuracy
    result = trainer.train(log_path=tmp_path / "rm.jsonl")
    assert result.val_pairs == 8 * 3  # C(3, 2) pairs per prompt
    assert result.val_accuracy == 1.0 and acc_before < 1.0
    assert result.train_losses[-1] < result.train_losses[0]
    demos = [Demonstration(str(i), f"question {i}?", "good good bad", "t") for i in range(5)]
    before = trainer.score([d.prompt for d in demos], [d.completion for d in demos])
    offset = trainer.normalize_to_demonstrations(demos)
    assert offset != 0.0 and trainer.offset == offset
    r = trainer.score([d.prompt for d in demos], [d.completion for d in demos])
    assert torch.equal(r, before)  # the stock score does not move: the offset is applied where PPO reads the reward
    assert (r - offset).mean().item() == pytest.approx(0.0, abs=1e-5)
    assert trainer.evaluate().accuracy == 1.0
    # mixed K with ties: K=2 lists and K=4 lists whose two middle completions tie (5 ranked pairs each)
    mixed = _separable_comparisons(3, k=2) + [
        Comparison(f"t{i}", f"\n\nHuman: question {i}?\n\nAssistant:", ("good good good", "good bad", "bad good", "bad bad bad"),
                   (0, 1, 2, 3), "test", (False, True, False)) for i in range(2)]
    acc = trainer.evaluate(mixed)
    assert {k: (v["pairs"], v["comparisons"]) for k, v in acc.by_k.items()} == {2: (3, 3), 4: (10, 2)}
    assert len(acc.outcomes) == len(acc.pair_k) == 13 and acc.pair_k.count(4) == 10
    assert acc.accuracy == pytest.approx((acc.by_k[2]["accuracy"] * 3 + acc.by_k[4]["accuracy"] * 10) / 13)


def test_new_reward_head_starts_at_zero_and_a_saved_one_is_restored(tiny_dir, tmp_path):
    model = load_scalar_model(tiny_dir)
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.score.bias is None
    assert model.score.weight.abs().sum().item() == 0.0
    with torch.no_grad():
        model.score.weight.fill_(0.25)
    model.save_pretrained(tmp_path / "rm")
    again = load_scalar_model(str(tmp_path / "rm"))
    assert torch.all(again.score.weight == 0.25)


def test_reward_head_gets_its_own_learning_rate(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    model = load_scalar_model(tiny_dir)
    cfg = RMConfig(lr=1e-5, head_lr=1e-3, warmup_ratio=0.0)
    trainer = RewardModelTrainer(cfg, model, tok, _separable_comparisons(4), [], chat_template="false")
    groups = trainer.opt.optimizer.param_groups
    assert [g["initial_lr"] for g in groups] == [1e-5, 1e-3]
    assert {id(p) for p in groups[1]["params"]} == {id(model.score.weight)}
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_freeze_lower_layers_trains_only_the_top(tiny_dir):
    model = load_scalar_model(tiny_dir)
    total = sum(p.numel() for p in model.parameters())
    n = freeze_lower_layers(model, 1)
    assert 0 < n < total
    assert not any(p.requires_grad for p in model.model.layers[0].parameters())
    assert all(p.requires_grad for p in model.model.layers[1].parameters()) and model.score.weight.requires_grad


def test_response_mask_stops_after_first_eos():
    r = torch.tensor([[5, 7, 0, 0, 9], [5, 6, 7, 8, 9], [0, 3, 0, 4, 4]])
    assert response_mask(r, eos_id=0).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def _ppo(tiny_dir, ptx_coef, steps=2):
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(steps=steps, batch_size=4, mini_batch_size=2, max_new_tokens=8, lr=1e-3, value_lr=1e-3, ptx_coef=ptx_coef,
                    ptx_batch_size=2, ptx_max_length=32, max_prompt_length=32)
    prompts = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(8)]
    pretrain = [PretrainText(str(i), "To be, or not to be, that is the question. " * 3, "t") for i in range(4)]
    policy = load_policy(tiny_dir)
    reward_model = load_scalar_model(tiny_dir)  # a fresh head is zero; give it a random "trained" one
    torch.manual_seed(1)
    torch.nn.init.normal_(reward_model.score.weight, std=0.5)
    trainer = PPOTrainer(cfg, policy, load_policy(tiny_dir), reward_model, load_scalar_model(tiny_dir), tok,
                         prompts, pretrain, chat_template="false", seed=0)
    return trainer, _params(policy)


def test_ppo_without_ptx_coef_runs_no_ptx_forward_and_updates_every_parameter(tiny_dir, tmp_path):
    trainer, before = _ppo(tiny_dir, ptx_coef=0.0)
    history = trainer.train(log_path=tmp_path / "ppo.jsonl")
    assert trainer.ptx_forwards == 0 and all(h["ptx_loss"] is None for h in history)
    logged = read_jsonl(tmp_path / "ppo.jsonl")
    assert [r["step"] for r in logged] == [1, 2]
    for key in ("reward_mean", "kl", "policy_loss", "value_loss", "entropy", "clipfrac", "approx_kl", "explained_variance", "response_length", "beta"):
        assert all(math.isfinite(r[key]) for r in logged), key
    after = dict(trainer.accelerator.unwrap_model(trainer.policy).named_parameters())
    assert [n for n, p in before.items() if torch.equal(p, after[n].detach())] == []
    # the frozen reference policy did not move, so the KL to it is real
    ref = dict(trainer.ref_policy.named_parameters())
    assert all(torch.equal(p, ref[n]) for n, p in before.items())


def test_ppo_ptx_mixes_a_pretraining_batch_into_every_minibatch(tiny_dir):
    trainer, _ = _ppo(tiny_dir, ptx_coef=0.5)
    history = trainer.train()
    assert trainer.ptx_forwards == 2 * (4 // 2)  # steps x minibatches per step x ppo_epochs(1)
    assert all(math.isfinite(h["ptx_loss"]) and h["ptx_loss"] > 0 for h in history)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide precision; let a test pick its own and leave none behind."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_ppo_under_bf16_autocast_sees_zero_kl_between_identical_policies(tiny_dir, fresh_accelerate_state):
    """With lr 0 the policy stays equal to the frozen reference, so the KL penalty must be exactly 0:
    under bf16 the reference (and the reward model) must run under the same autocast as the policy."""
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=6, lr=0.0, value_lr=0.0, max_prompt_length=32,
                    mixed_precision="bf16")
    reward_model = load_scalar_model(tiny_dir)
    torch.nn.init.normal_(reward_model.score.weight, std=0.5)
    trainer = PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), reward_model, load_scalar_model(tiny_dir), tok,
                         [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(8)], chat_template="false", seed=0)
    history = trainer.train()
    assert all(h["kl"] == 0.0 and h["approx_kl"] == 0.0 for h in history)
    assert all(math.isfinite(h["reward_mean"]) and h["reward_std"] > 0 for h in history)  # the reward model did score
    # the batch mean's standard error over its 4 episodes (the shape test of a run without a probe weighs by it); no gold
    assert [h["reward_se"] for h in history] == pytest.approx([h["reward_std"] / 2 for h in history], rel=1e-5)
    assert all(h["gold_reward_se"] is None for h in history)


def test_ppo_config_errors_are_clear(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    with pytest.raises(ValueError, match="needs pretraining texts"):
        PPOTrainer(PPOConfig(ptx_coef=1.0), load_policy(tiny_dir), load_policy(tiny_dir), load_scalar_model(tiny_dir),
                   load_scalar_model(tiny_dir), tok, [Prompt("0", "x", "t")], None)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_sft_gradient_accumulation_4x2_and_2x4_equal_batch_8(tiny_dir, tmp_path):
    """The gradient the optimiser steps on: micro-batches of 4 (or 2) with accumulation 2 (or 4) == one batch of 8.

    Compared at the optimiser step (not after it): Adam's first update is invariant to the
    gradient's scale, so only the gradient itself would show a wrong accumulation factor.
    """
    tok = load_tokenizer(tiny_dir)
    colours = ["red", "blue", "gold", "pink", "grey", "green", "lime", "navy"]
    demos = [Demonstration(str(i), f"Name colour {i}.", f"colour {c}", "t") for i, c in enumerate(colours)]
    grads = []
    for batch_size, accum in ((8, 1), (4, 2), (2, 4)):
        cfg = SFTConfig(lr=1e-2, epochs=1, batch_size=batch_size, grad_accum=accum, warmup_ratio=0.0, max_grad_norm=1e9,
                        max_length=48, max_prompt_length=32)
        trainer = SFTTrainer(cfg, load_policy(tiny_dir), tok, demos, [], chat_template="false", seed=0)
        assert len({sum(p.completion_mask) for p in trainer.train_pairs}) == 1  # equal lengths: token mean == mean of means
        model, inner, seen = trainer.accelerator.unwrap_model(trainer.model), trainer.opt.optimizer, []
        real_step = inner.step

        def spy(*args, _model=model, _seen=seen, _step=real_step, **kwargs):
            _seen.append({n: p.grad.detach().clone() for n, p in _model.named_parameters()})
            return _step(*args, **kwargs)

        inner.step = spy
        result = trainer.train(tmp_path / f"sft{batch_size}")
        assert len(seen) == 1 and len(result.train_losses) == 1  # one optimiser step in every set-up
        grads.append(seen[0])
    for other in grads[1:]:
        for name, g in grads[0].items():
            # float32 sums in another order differ by up to ~3e-6 of the tensor's largest entry (seen with 2
            # intra-op threads and 4 micro-batches); a wrong accumulation factor is off by 50 % or more
            assert torch.allclose(g, other[name], rtol=1e-4, atol=1e-5 * g.abs().max().item()), name
    assert max(g.abs().max().item() for g in grads[0].values()) > 1e-3  # not vacuously zero


@pytest.mark.parametrize("select_by", ["rm_score", "loss"])
def test_sft_selects_the_best_candidate_and_ends_with_its_weights(tiny_dir, tmp_path, select_by):
    tok = load_tokenizer(tiny_dir)
    rm = load_scalar_model(tiny_dir)
    torch.manual_seed(2)
    torch.nn.init.normal_(rm.score.weight, std=1.0)  # a random but fixed "trained" head: scores differ between candidates
    demos = [Demonstration(str(i), f"Repeat the word {w}.", f"{w} {w} {w}", "t") for i, w in enumerate(["apple", "river", "stone", "cloud"])]
    # validation asks for something else: training first helps it (format), then overfits away from it
    demos += [Demonstration(f"v{i}", f"Say hello to {w}.", f"hello {w}, nice to meet you", "t") for i, w in enumerate(["Ann", "Bob"])]
    cfg = SFTConfig(lr=3e-2, epochs=4, batch_size=2, warmup_ratio=0.0, max_length=48, max_prompt_length=32, select_by=select_by,
                    eval_steps=2, selection_max_new_tokens=6)
    trainer = SFTTrainer(cfg, load_policy(tiny_dir), tok, demos[:4], demos[4:], chat_template="false", seed=0, selection_rm=(rm, tok))
    result = trainer.train(tmp_path / "sft", log_path=tmp_path / "log.jsonl")
    assert [c["step"] for c in result.candidates] == [2, 4, 6, 8]
    key, pick = ("val_rm_score", max) if select_by == "rm_score" else ("val_loss", min)
    values = [c[key] for c in result.candidates]
    assert len(set(values)) > 1
    assert result.selected_step == result.candidates[values.index(pick(values))]["step"]
    assert result.selected_step != trainer.total_steps  # so the restore below is not a no-op
    # the trainer ends holding the selected candidate's weights, not the last step's
    assert trainer.evaluate() == pytest.approx(result.candidates[values.index(pick(values))]["val_loss"], rel=1e-5)
    assert trainer.rm_score() == pytest.approx(result.candidates[values.index(pick(values))]["val_rm_score"], rel=1e-5)
    logged = [r for r in read_jsonl(tmp_path / "log.jsonl") if "val_loss" in r]
    assert [r[key] for r in logged] == pytest.approx(values)


def test_sft_selection_errors_are_clear(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    demos = [Demonstration("a", "x", "y", "t")]
    with pytest.raises(ValueError, match="needs a selection reward model"):
        SFTTrainer(SFTConfig(select_by="rm_score"), load_policy(tiny_dir), tok, demos, demos)
    with pytest.raises(ValueError, match="needs validation demonstrations"):
        SFTTrainer(SFTConfig(select_by="loss"), load_policy(tiny_dir), tok, demos, [])
    with pytest.raises(ValueError, match="select_by='best'"):
        SFTTrainer(SFTConfig(select_by="best"), load_policy(tiny_dir), tok, demos, demos)
