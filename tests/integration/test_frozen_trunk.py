"""A frozen trunk read once (trainers/frozen_trunk.py): PPO with ``trainable_layers`` runs it once per rollout for
every model that shares it, the RM trainer once per training sequence over all epochs; the numbers are those of
whole forwards."""

import math

import pytest
import torch

from harness.config import LoRAConfig, PPOConfig, RMConfig
from harness.judging.shared_trunk import shared_layers
from harness.models import load_policy, load_scalar_model, load_tokenizer, with_reward_pad
from harness.records import Comparison, Prompt
from trainers.frozen_trunk import plan_trunk_sharing
from trainers.ppo import PPOTrainer
from trainers.reward_model import RewardModelTrainer
from trainers.rewards import ended_with_eos

pytestmark = pytest.mark.integration
PROMPTS = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(8)]


def _scalar(tiny_dir, tok, seed, perturb=0.0):
    model = load_scalar_model(tiny_dir)
    with_reward_pad(model, tok)  # one embedding row more than the policy, as a trained RM has
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=gen) * 0.5)
        for p in model.model.layers[0].parameters() if perturb else []:
            p.add_(torch.randn(p.shape, generator=gen) * perturb)
    return model


def _trainer(tiny_dir, value_head="separate", gold_perturb=0.0, **overrides):
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(**{"steps": 2, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 2, "max_new_tokens": 8, "lr": 1e-3,
                       "value_lr": 1e-3, "max_prompt_length": 32, "value_head": value_head, "trainable_layers": 1, **overrides})
    value = _scalar(tiny_dir, tok, 1) if value_head == "separate" else None
    return PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), _scalar(tiny_dir, tok, 1), value, tok, PROMPTS,
                      chat_template="false", seed=0, gold_reward=_scalar(tiny_dir, tok, 2, gold_perturb))


def _trained(trainer):
    out = {f"policy.{n}": p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.policy).named_parameters()}
    if trainer.value_model is not None:
        out.update({f"value.{n}": p.detach().clone() for n, p in trainer.value_model.named_parameters()})
    return out


@pytest.mark.parametrize("batch,value_head", [(2, "separate"), (4, "separate"), (2, "shared")])
def test_trunk_read_once_gives_the_numbers_of_whole_forwards(tiny_dir, batch, value_head):
    """Two iterations with the trunk shared and with every model run whole (``trunk = None``): the same rollouts
    (log-probs, reference log-probs, values, proxy and gold rewards), statistics and weights. ``batch`` 4 = one
    minibatch, whose rollout forward doubles as the first update's."""
    runs = {}
    for shared in (True, False):
        trainer = _trainer(tiny_dir, value_head, mini_batch_size=batch)
        assert trainer.trunk is not None and trainer.trunk.n_shared == 1
        assert trainer.trunk.shared == (["reference", "value", "reward", "gold"] if value_head == "separate"
                                         else ["reference", "reward", "gold"])
        if not shared:
            trainer.trunk = None
        rollouts, history = [], []
        for step in range(2):
            torch.manual_seed(10 + step)
            ro = trainer.rollout(PROMPTS[:4])
            assert (ro.trunk is not None) == shared
            rollouts.append({k: getattr(ro, k).detach().clone() for k in
                             ("sequences", "logprobs", "ref_logprobs", "values", "scores", "gold_scores")})
            torch.manual_seed(20 + step)
            history.append(trainer.step(ro))
        runs[shared] = rollouts, history, _trained(trainer)
    (r1, h1, p1), (r0, h0, p0) = runs[True], runs[False]
    for a, b in zip(r1, r0):
        assert torch.equal(a["sequences"], b["sequences"])
        for k in ("logprobs", "ref_logprobs", "values", "scores", "gold_scores"):
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5, msg=k)
    for a, b in zip(h1, h0):
        for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "kl", "reward_mean", "gold_reward_mean"):
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
    assert {n: (p1[n] - p0[n]).abs().max().item() for n in p1 if not torch.allclose(p1[n], p0[n], atol=1e-5)} == {}


def _layer0_calls(trainer, fn):
    """How often each model's lowest decoder layer runs during ``fn()`` (full-sequence forwards only)."""
    models = {"policy": trainer.policy_model, "reference": trainer.ref_policy, "value": trainer.value_model,
              "reward": trainer.reward.model, "gold": trainer.gold_reward.model}
    calls = dict.fromkeys(models, 0)
    hooks = [m.model.layers[0].register_forward_hook(lambda *_, role=role: calls.__setitem__(role, calls[role] + 1))
             for role, m in models.items()]
    try:
        out = fn()
    finally:
        for h in hooks:
            h.remove()
    return calls, out


def test_only_the_top_blocks_train_and_the_trunk_runs_once_per_rollout_chunk(tiny_dir):
    trainer = _trainer(tiny_dir)  # batch 4 in minibatches of 2: two rollout chunks, 2 epochs x 2 updates
    policy = trainer.policy_model
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trainable)  # tied LM head stays frozen
    assert {n for n, p in trainer.value_model.named_parameters() if p.requires_grad} >= {"score.weight", "model.layers.1.mlp.up_proj.weight"}
    assert not trainer.value_model.model.layers[0].self_attn.q_proj.weight.requires_grad
    before = _trained(trainer)
    calls, ro = _layer0_calls(trainer, lambda: trainer.rollout(PROMPTS[:4]))
    assert calls["policy"] > 0  # generation and the trunk's output, one per rollout chunk
    assert calls["reference"] == calls["value"] == calls["reward"] == calls["gold"] == 0
    calls_step, stats = _layer0_calls(trainer, lambda: trainer.step(ro))
    assert calls_step == dict.fromkeys(calls_step, 0)  # every update starts from the stored trunk
    assert math.isfinite(stats["value_loss"])
    after = _trained(trainer)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and all(".layers.1." in n or ".norm." in n or n.endswith("score.weight") for n in moved)


def test_a_model_whose_lower_layers_differ_runs_whole_with_its_own_numbers(tiny_dir):
    trainer = _trainer(tiny_dir, gold_perturb=1e-3)
    assert trainer.trunk.shared == ["reference", "value", "reward"] and trainer.trunk.whole == ["gold"]
    assert trainer.trunk.record() == {"trunk_layers": 1, "trunk_shared_by": ["policy", "reference", "value", "reward"],
                                      "trunk_not_shared_by": ["gold"]}
    torch.manual_seed(0)
    ro = trainer.rollout(PROMPTS[:4])
    ended = ended_with_eos(ro.sequences, ro.attention_mask, ro.prompt_len, trainer.tokenizer.eos_token_id, trainer.tokenizer.pad_token_id)
    whole = trainer.gold_reward(*ended, ro.prompt_len)
    torch.testing.assert_close(ro.gold_scores, whole.float())
    assert not torch.allclose(ro.gold_scores, ro.raw_scores)  # not silently read from the shared trunk


def test_embedding_rows_added_after_the_policy_s_still_share(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    policy, rm = load_policy(tiny_dir), _scalar(tiny_dir, tok, 1)
    assert rm.model.embed_tokens.weight.shape[0] == policy.model.embed_tokens.weight.shape[0] + 1
    assert shared_layers(policy, rm) == 0 and shared_layers(policy, rm, extra_rows=True) == 2
    assert plan_trunk_sharing(policy, None, {"reward": rm}) is None
    assert plan_trunk_sharing(policy, 2, {"reward": rm}) is None  # nothing left frozen
    assert plan_trunk_sharing(policy, 1, {"reward": rm}, num_processes=2) is None
    with pytest.raises(ValueError, match="unknown roles"):
        plan_trunk_sharing(policy, 1, {"critic": rm})


def test_trainable_layers_and_lora_are_refused_together(tiny_dir):
    with pytest.raises(ValueError, match="trainable_layers=1 and lora / value_lora are two ways"):
        _trainer(tiny_dir, value_lora=LoRAConfig(r=2))


def test_rm_epochs_after_the_first_run_only_the_top_blocks_with_the_same_result(tiny_dir):
    """Three epochs of an RM with its top block trainable: the trunk runs for each training sequence once (epoch 1),
    never in epochs 2-3, and the losses, weights and held-out accuracy equal a run whose every epoch runs whole."""
    tok = load_tokenizer(tiny_dir)
    comps = [Comparison(str(i), f"Question {i}: which {'word ' * (i % 3)}is best?", ("good " * (1 + i % 4), "bad", "so so"),
                        (0, 2, 1), "t") for i in range(8)]
    cfg = RMConfig(lr=5e-3, head_lr=5e-3, epochs=3, batch_size=2, max_length=48, max_prompt_length=24, warmup_ratio=0.0,
                   normalize_to_demos=False, trainable_layers=1)
    runs = {}
    for cached in (True, False):
        trainer = RewardModelTrainer(cfg, load_scalar_model(tiny_dir), tok, comps, comps[:3], chat_template="false")
        assert trainer.trunk_cache is not None and trainer.trunk_cache.n_shared == 1
        if not cached:
            trainer.trunk_cache = None
        model = trainer.accelerator.unwrap_model(trainer.model)
        rows = []
        hook = model.model.layers[0].register_forward_hook(lambda _m, args, _o: rows.append(args[0].shape[0]))
        try:
            result = trainer.train()
        finally:
            hook.remove()
        runs[cached] = result, {n: p.detach().clone() for n, p in model.named_parameters()}, rows, trainer.trunk_cache
    (r1, p1, rows1, cache), (r0, p0, rows0, _) = runs[True], runs[False]
    n_seqs, n_val = sum(c.k for c in comps), sum(c.k for c in comps[:3])
    assert sum(rows0) == 3 * n_seqs + n_val  # whole: every epoch's sequences, then the held-out ones
    assert sum(rows1) == n_seqs + n_val and (cache.misses, cache.hits) == (n_seqs, 2 * n_seqs)
    assert cache.nbytes > 0
    assert r1.train_losses == pytest.approx(r0.train_losses, rel=1e-5, abs=1e-6)
    assert r1.train_losses[-1] < r1.train_losses[0]  # it learned
    assert r1.val_correct_per_pair == r0.val_correct_per_pair
    assert {n: (p1[n] - p0[n]).abs().max().item() for n in p1 if not torch.allclose(p1[n], p0[n], atol=1e-5)} == {}


def test_rm_keeps_no_trunk_for_one_epoch_or_all_blocks(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    comps = [Comparison("0", "Q?", ("a", "b"), (0, 1), "t")]
    for cfg in (RMConfig(epochs=1, trainable_layers=1), RMConfig(epochs=2), RMConfig(epochs=2, trainable_layers=2)):
        assert RewardModelTrainer(cfg, load_scalar_model(tiny_dir), tok, comps, []).trunk_cache is None, cfg


def test_sft_with_top_blocks_keeps_the_base_trunk_so_ppo_shares_it_with_a_base_trained_gold(tiny_dir, tmp_path):
    """SFT with ``trainable_layers`` changes only the top block (+ final norm); a PPO policy from it then shares its
    trunk with a reward model trained from the base (here: the base with a scalar head), which otherwise runs whole."""
    from harness.config import SFTConfig
    from harness.records import Demonstration
    from trainers.sft import SFTTrainer

    tok = load_tokenizer(tiny_dir)
    demos = [Demonstration(str(i), f"Repeat {w}.", f"{w} {w}", "t") for i, w in enumerate(["apple", "river", "stone", "cloud"])]
    tuned = {}
    for k in (1, None):
        policy = load_policy(tiny_dir)
        base = {n: p.detach().clone() for n, p in policy.named_parameters()}
        SFTTrainer(SFTConfig(lr=1e-2, epochs=2, batch_size=2, max_length=32, max_prompt_length=16, trainable_layers=k),
                   policy, tok, demos, [], chat_template="false").train(tmp_path / f"sft{k}")
        moved = {n for n, p in policy.named_parameters() if not torch.equal(base[n], p.detach())}
        tuned[k] = policy
        if k:
            assert moved and all(n.startswith(("model.layers.1.", "model.norm.")) for n in moved), moved
        else:
            assert any(n.startswith("model.layers.0.") for n in moved)
    gold = _scalar(tiny_dir, tok, 2)
    for k, policy in tuned.items():
        plan = plan_trunk_sharing(policy, 1, {"gold": gold})
        assert plan.shared == (["gold"] if k else []) and plan.whole == ([] if k else ["gold"])
    with pytest.raises(ValueError, match="two ways"):
        SFTTrainer(SFTConfig(trainable_layers=1, lora=LoRAConfig(r=2)), load_policy(tiny_dir), tok, demos, [], chat_template="false")
