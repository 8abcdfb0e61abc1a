"""Trainer options on model=tiny: LoRA and residual dropout for SFT, length-grouped batches, experiment
trackers, PPO's shared value head and the ptx ratio."""

import math

import pytest
import torch
from accelerate.tracking import GeneralTracker
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

from harness.config import LoRAConfig, PPOConfig, RMConfig, SFTConfig
from harness.io import read_jsonl
from harness.models import load_policy, load_scalar_model, load_tokenizer, with_dropout
from harness.records import Comparison, Demonstration, PretrainText, Prompt
from trainers.common import head_can_skip_positions
from trainers.losses import length_coefficient, token_logprobs
from trainers.ppo import PolicyWithValueHead, PPOTrainer
from trainers.reward_model import RewardModelTrainer, ranked_token_differences
from trainers.sft import SFTTrainer, collate_pairs
from trainers.tracking import Tracking

pytestmark = pytest.mark.integration
WORDS = ["apple", "river", "stone", "cloud", "maple", "ocean", "tiger", "lemon"]
# completions of 1 to 8 repeated words: lengths differ, so batching decides the padding
DEMOS = [Demonstration(str(i), f"Repeat the word {w}.", " ".join([w] * (i + 1)), "t") for i, w in enumerate(WORDS)]
PROMPTS = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(8)]
PRETRAIN = [PretrainText(str(i), f"To be, or not to be, that is question {i}. " * 3, "t") for i in range(5)]


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _sft_cfg(**kw):
    return SFTConfig(**{"lr": 1e-2, "epochs": 2, "batch_size": 2, "warmup_ratio": 0.0, "max_length": 48, "max_prompt_length": 32, **kw})


class RecordingTracker(GeneralTracker):
    """A custom accelerate tracker that keeps what it is given."""

    name = "recording"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.config, self.logged, self.finished = None, [], 0

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        self.config = dict(values)

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished += 1


# ------------------------------------------------------------------------------------------ SFT options
def test_sft_loss_skips_the_prompt_in_the_lm_head_with_the_same_loss_and_gradient(tiny_dir):
    """SFT sends only the positions from the batch's first completion token on through the LM head;
    the loss and every gradient equal the full-width log-softmax loss over all positions."""
    tok = load_tokenizer(tiny_dir)
    demos = [Demonstration("a", "Tell me one word, please, any word at all.", "apple river", "t"),
             Demonstration("b", "Say two words.", "stone cloud maple", "t")]  # prompts of different lengths
    trainer = SFTTrainer(_sft_cfg(), load_policy(tiny_dir), tok, demos, [], chat_template="false")
    batch = collate_pairs(trainer.train_pairs, tok.pad_token_id)
    first = int(batch["loss_mask"][:, 1:].any(0).nonzero()[0, 0])
    assert trainer._head_skips_prompt and first >= 3  # the shorter prompt still leaves positions to skip
    assert not head_can_skip_positions(torch.nn.Linear(2, 2))  # a forward without logits_to_keep: full-width path
    seen = []
    head = trainer.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    loss = trainer._loss(batch)
    hook.remove()
    assert seen == [batch["input_ids"].shape[1] - 1 - first]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    trainer.model.zero_grad()
    # reference: log-softmax and gather over every position, completion tokens averaged
    logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["loss_mask"][:, 1:].float()
    ref = -(token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:]) * mask).sum() / mask.sum()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    for n, p in trainer.model.named_parameters():
        assert torch.allclose(grads[n], p.grad, atol=1e-6), n


def test_sft_lora_trains_only_adapters_and_saves_a_merged_plain_model(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    base = load_policy(tiny_dir).eval()
    cfg = _sft_cfg(epochs=4, lora=LoRAConfig(r=4, alpha=8.0, target_modules=["q_proj", "v_proj", "o_proj"]))
    trainer = SFTTrainer(cfg, load_policy(tiny_dir), tok, DEMOS, [], chat_template="false")
    adapted = trainer.accelerator.unwrap_model(trainer.model)
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    n_layers = base.config.num_hidden_layers
    assert len(trainable) == n_layers * 3 * 2 and all(".lora_A." in n or ".lora_B." in n for n in trainable)  # A and B per target
    assert {id(p) for g in trainer.opt.optimizer.param_groups for p in g["params"]} == \
        {id(p) for n, p in adapted.named_parameters() if n in trainable}
    before = _params(adapted)
    result = trainer.train(tmp_path / "sft")
    assert result.train_losses[-1] < result.train_losses[0]
    changed = {n for n, p in adapted.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed == trainable  # every adapter weight moved, no base weight did

    ids = torch.tensor([tok("\n\nHuman: Repeat the word apple.\n\nAssistant: apple apple")["input_ids"]])
    adapted.eval()
    with torch.no_grad():
        adapter_logits = adapted(input_ids=ids).logits
    path = trainer.save(tmp_path / "ckpt", {"sft": "lora"}, {}, {})
    assert not (path / "adapter_config.json").exists()
    merged = load_policy(str(path)).eval()
    assert type(merged) is type(base) and merged.state_dict().keys() == base.state_dict().keys()
    with torch.no_grad():
        merged_logits, base_logits = merged(input_ids=ids).logits, base(input_ids=ids).logits
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-5)
    assert (merged_logits - base_logits).abs().max().item() > 1e-2
    moved = {n for n, p in merged.state_dict().items() if not torch.equal(p, base.state_dict()[n])}
    assert moved == {f"model.layers.{i}.self_attn.{m}.weight" for i in range(n_layers) for m in ("q_proj", "v_proj", "o_proj")}


def test_rm_lora_trains_adapters_and_the_head_and_saves_a_stock_sequence_classifier(tiny_dir, tmp_path):
    from harness.judging.reward_model import reward_scores
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = load_tokenizer(tiny_dir)
    comps = [Comparison(str(i), f"\n\nHuman: question {i}?\n\nAssistant:", ("good good", "bad"), (0, 1), "t") for i in range(8)]
    cfg = RMConfig(lr=5e-3, head_lr=5e-3, epochs=3, batch_size=2, max_length=48, max_prompt_length=24, warmup_ratio=0.0,
                   normalize_to_demos=False, lora=LoRAConfig(r=4, alpha=8.0, target_modules=["q_proj", "v_proj"]))
    trainer = RewardModelTrainer(cfg, load_scalar_model(tiny_dir), tok, comps, comps[:2], chat_template="false")
    adapted = trainer.accelerator.unwrap_model(trainer.model)
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    n_layers = load_scalar_model(tiny_dir).config.num_hidden_layers
    lora = {n for n in trainable if ".lora_A." in n or ".lora_B." in n}
    assert len(lora) == n_layers * 2 * 2 and trainable - lora == {"base_model.model.score.weight"}  # adapters + the full head
    before = _params(adapted)
    result = trainer.train()
    assert result.train_losses[-1] < result.train_losses[0]
    assert {n for n, p in adapted.named_parameters() if not torch.equal(before[n], p.detach())} == trainable
    prompts, outs = [c.prompt for c in comps], [c.completions[k] for c in comps for k in (0,)]
    trained = trainer.score(prompts, outs).detach()
    path = trainer.save(tmp_path / "rm", {"rm": "lora"}, {}, {})
    assert not (path / "adapter_config.json").exists()
    stock = AutoModelForSequenceClassification.from_pretrained(path).eval()  # a plain transformers load, no peft
    assert type(stock).__name__.endswith("ForSequenceClassification") and stock.config.num_labels == 1
    got = reward_scores(stock, AutoTokenizer.from_pretrained(path), prompts, outs, max_length=48, max_prompt_length=24,
                        chat_template="false")
    assert torch.allclose(torch.tensor(got), trained, atol=1e-5)  # merging (alpha / r) B A into W changes no score
    with pytest.raises(ValueError, match="two ways"):
        RewardModelTrainer(RMConfig(trainable_layers=1, lora=LoRAConfig(r=2)), load_scalar_model(tiny_dir), tok, comps, [])


def test_lora_on_all_linear_layers_of_a_reward_model_leaves_its_scalar_head_a_plain_trainable_linear(tiny_dir):
    # peft's all-linear spares only a causal LM's output embedding: without the exclusion the scalar head `score`
    # of a reward / value model got adapters too (and scalar_head() refused the model)
    from harness.models import scalar_head

    tok = load_tokenizer(tiny_dir)
    comps = [Comparison(str(i), f"question {i}?", ("good good", "bad"), (0, 1), "t") for i in range(4)]
    cfg = RMConfig(epochs=1, batch_size=2, max_length=32, max_prompt_length=16, lora=LoRAConfig(r=2, target_modules=["all-linear"]))
    trainer = RewardModelTrainer(cfg, load_scalar_model(tiny_dir), tok, comps, comps[:2], chat_template="false")
    adapted = trainer.accelerator.unwrap_model(trainer.model)
    assert type(scalar_head(adapted)) is torch.nn.Linear
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if ".lora_A." in n or ".lora_B." in n}
    assert trainable - lora == {"base_model.model.score.weight"} and not any("score" in n for n in lora)
    assert any("mlp.down_proj.lora_A" in n for n in lora)  # every linear layer of the blocks has adapters


def test_residual_dropout_is_stochastic_in_training_only_and_not_saved(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    trainer = SFTTrainer(_sft_cfg(residual_dropout=0.3), load_policy(tiny_dir), tok, DEMOS, [], chat_template="false")
    model = trainer.accelerator.unwrap_model(trainer.model)
    assert trainer.base_dropout == {"attention_dropout": 0.0} and model.config.attention_dropout == 0.3
    ids = torch.tensor([tok("Repeat the word apple, apple, apple.")["input_ids"]])
    reference = load_policy(tiny_dir).eval()
    with torch.no_grad():
        model.train()
        a, b = model(input_ids=ids).logits, model(input_ids=ids).logits
        model.eval()
        c, d = model(input_ids=ids).logits, model(input_ids=ids).logits
        ref = reference(input_ids=ids).logits
    assert (a - b).abs().max().item() > 1e-3  # training mode: dropout differs between passes
    assert torch.equal(c, d) and torch.allclose(c, ref, atol=1e-6)  # eval mode: deterministic, same weights as loaded
    trainer.train(tmp_path / "sft")
    path = trainer.save(tmp_path / "ckpt", {}, {}, {})
    saved = load_policy(str(path)).train()
    assert saved.config.attention_dropout == 0.0  # later stages do not inherit SFT's dropout
    with torch.no_grad():
        assert torch.equal(saved(input_ids=ids).logits, saved(input_ids=ids).logits)


def test_residual_dropout_on_gpt2_sets_resid_pdrop():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    params = {n: p for n, p in model.named_parameters()}
    rebuilt, previous = with_dropout(model, 0.3)
    assert previous == {"resid_pdrop": 0.0} and rebuilt.config.resid_pdrop == 0.3 and rebuilt.config.attn_pdrop == 0.0
    assert all(p is params[n] for n, p in rebuilt.named_parameters())  # the same tensors, not copies
    ids = torch.arange(10).unsqueeze(0)
    with torch.no_grad():
        rebuilt.train()
        assert not torch.equal(rebuilt(input_ids=ids).logits, rebuilt(input_ids=ids).logits)
        rebuilt.eval()
        assert torch.equal(rebuilt(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


def test_sft_logs_real_and_padded_tokens_and_grouping_pads_less(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    padded = {}
    for group in (True, False):
        log = tmp_path / f"log_{group}.jsonl"
        trainer = SFTTrainer(_sft_cfg(group_by_length=group), load_policy(tiny_dir), tok, DEMOS, [], chat_template="false")
        trainer.train(tmp_path / "sft", log_path=log)
        rows = read_jsonl(log)
        lengths = [len(p.input_ids) for p in trainer.train_pairs]
        assert len(set(lengths)) == len(DEMOS)  # all lengths differ
        assert sum(r["tokens"] for r in rows) == 2 * sum(lengths)  # each example once per epoch (2 epochs)
        assert all(r["tokens"] <= r["padded_tokens"] for r in rows)
        padded[group] = sum(r["padded_tokens"] for r in rows)
    assert padded[True] < padded[False], padded


# ---------------------------------------------------------------------------------------------- trackers
def test_sft_writes_tensorboard_scalars_equal_to_the_jsonl_log(tiny_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tok = load_tokenizer(tiny_dir)
    cfg = _sft_cfg()
    tracking = Tracking(["tensorboard"], project="proj", logging_dir=str(tmp_path / "tb" / "sft"), run_name="sft", config={"sft": cfg})
    trainer = SFTTrainer(cfg, load_policy(tiny_dir), tok, DEMOS, [], chat_template="false", tracking=tracking)
    trainer.train(tmp_path / "sft", log_path=tmp_path / "log.jsonl")
    rows = read_jsonl(tmp_path / "log.jsonl")
    assert len(rows) == 8  # 8 demonstrations / batch 2 x 2 epochs
    events = EventAccumulator(str(tmp_path / "tb" / "sft" / "proj"))
    events.Reload()
    for key in ("loss", "lr", "tokens", "padded_tokens"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [r["step"] for r in rows], key
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in rows], rel=1e-6), key
    assert "step" not in events.Tags()["scalars"]


def test_rm_and_ppo_report_every_logged_number_to_a_custom_tracker(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    comps = [Comparison(str(i), f"\n\nHuman: question {i}?\n\nAssistant:", ("good good", "bad"), (0, 1), "t") for i in range(6)]
    rm_cfg = RMConfig(lr=1e-3, batch_size=2, max_length=48, max_prompt_length=24)
    tracker = RecordingTracker()
    trainer = RewardModelTrainer(rm_cfg, load_scalar_model(tiny_dir), tok, comps, [], chat_template="false",
                                 tracking=Tracking([tracker], run_name="rm", config={"rm": rm_cfg, "seed": 0}))
    assert tracker.config["rm.lr"] == 1e-3 and tracker.config["rm.group_by_length"] is True and tracker.config["seed"] == 0
    trainer.train(log_path=tmp_path / "rm.jsonl")
    rows = read_jsonl(tmp_path / "rm.jsonl")
    assert [step for step, _ in tracker.logged] == [r["step"] for r in rows] == [1, 2, 3]
    assert [values for _, values in tracker.logged] == [{k: v for k, v in r.items() if k != "step"} for r in rows]
    assert tracker.finished == 1

    tracker = RecordingTracker()
    ppo, _ = _ppo_trainer(tiny_dir, "shared", tracking=Tracking([tracker], run_name="ppo"))
    history = ppo.train(log_path=tmp_path / "ppo.jsonl")
    assert [step for step, _ in tracker.logged] == [1, 2]
    for (_, values), h in zip(tracker.logged, history):
        assert values == {k: v for k, v in h.items() if k != "step" and v is not None}
        assert "ptx_loss" not in values and math.isfinite(values["value_loss"])
    assert tracker.finished == 1


# --------------------------------------------------------------------------------------------------- PPO
def _ppo_trainer(tiny_dir, value_head, tracking=None, **overrides):
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(**{"steps": 2, "batch_size": 4, "mini_batch_size": 2, "max_new_tokens": 8, "lr": 1e-3, "value_lr": 1e-3,
                       "ptx_max_length": 32, "max_prompt_length": 32, "value_head": value_head, **overrides})
    policy = load_policy(tiny_dir)
    reward_model = load_scalar_model(tiny_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(reward_model.score.weight, std=0.5)  # a "trained" reward head, so rewards vary
    value_model = load_scalar_model(tiny_dir) if value_head == "separate" else None
    trainer = PPOTrainer(cfg, policy, load_policy(tiny_dir), reward_model, value_model, tok, PROMPTS, PRETRAIN,
                         chat_template="false", seed=0, tracking=tracking)
    return trainer, policy


def test_shared_value_head_trains_the_whole_policy_and_saves_a_plain_causal_lm(tiny_dir, tmp_path):
    trainer, policy = _ppo_trainer(tiny_dir, "shared")
    assert trainer.value_model is None and trainer.policy_model is policy
    head = trainer.accelerator.unwrap_model(trainer.policy).value_head
    assert head.weight.abs().sum().item() == 0.0 and head.bias.item() == 0.0  # zero-init: first values are 0
    assert [g["lr"] for g in trainer.opt.optimizer.param_groups] == [1e-3, 1e-3]
    assert {id(p) for p in trainer.opt.optimizer.param_groups[1]["params"]} == {id(head.weight), id(head.bias)}
    before, head_before = _params(policy), _params(head)
    trainer.train(log_path=tmp_path / "ppo.jsonl")
    logged = read_jsonl(tmp_path / "ppo.jsonl")
    assert all(math.isfinite(r["value_loss"]) and r["value_loss"] > 0 for r in logged)
    assert [n for n, p in policy.named_parameters() if torch.equal(before[n], p.detach())] == []
    assert [n for n, p in head.named_parameters() if torch.equal(head_before[n], p.detach())] == []

    path = trainer.save(tmp_path / "ckpt", "ppo", {}, {}, {})
    loaded = load_policy(str(path)).eval()
    assert type(loaded) is type(policy) and loaded.state_dict().keys() == policy.state_dict().keys()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, policy.eval()(input_ids=ids).logits, atol=1e-6)
    saved_head = load_file(str(path / "value_head" / "value_head.safetensors"))
    assert torch.equal(saved_head["weight"], head.weight.detach()) and torch.equal(saved_head["bias"], head.bias.detach())


def _trunk_forwards(trainer, fn):
    """Sequence lengths of the forward passes of every transformer trunk the trainer owns (policy, value,
    reference, reward) during ``fn()``, and ``fn()``'s result."""
    trunk = type(trainer.policy_model.model)
    models = [trainer.policy, trainer.ref_policy, trainer.reward.model] + ([trainer.value_model] if trainer.value_model is not None else [])
    lengths = []
    hooks = [m.register_forward_hook(lambda _m, _args, out: lengths.append(out.last_hidden_state.shape[1]))
             for model in models for m in model.modules() if isinstance(m, trunk)]
    try:
        out = fn()
    finally:
        for h in hooks:
            h.remove()
    return lengths, out


def test_shared_value_head_runs_fewer_forward_passes_than_separate(tiny_dir):
    per_minibatch, per_rollout_chunk = {}, {}
    for mode in ("separate", "shared"):
        trainer, _ = _ppo_trainer(tiny_dir, mode, ppo_epochs=2)
        cfg = trainer.cfg
        rollout_lengths, ro = _trunk_forwards(trainer, lambda: trainer.rollout(PROMPTS[: cfg.batch_size]))
        update_lengths, stats = _trunk_forwards(trainer, lambda: trainer.step(ro))
        assert math.isfinite(stats["value_loss"])
        full = ro.sequences.shape[1]  # generation's own forwards (prompt prefill, one token at a time) are shorter
        chunks = cfg.batch_size // cfg.mini_batch_size
        # the reward model reads the episodes ended in EOS (trainers.rewards.ended_with_eos): one column more
        per_rollout_chunk[mode] = (sum(n == full for n in rollout_lengths) / chunks, sum(n == full + 1 for n in rollout_lengths) / chunks)
        per_minibatch[mode] = len(update_lengths) / (cfg.batch_size // cfg.mini_batch_size * cfg.ppo_epochs)
    assert per_minibatch["shared"] < per_minibatch["separate"], per_minibatch
    assert per_minibatch == {"separate": 2.0, "shared": 1.0}  # policy + value model vs one trunk for both
    assert per_rollout_chunk == {"separate": (3.0, 1.0), "shared": (2.0, 1.0)}  # policy, reference (+ value model); reward


def test_value_head_and_value_model_must_match(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    args = (load_policy(tiny_dir), load_policy(tiny_dir), load_scalar_model(tiny_dir))
    with pytest.raises(ValueError, match="value_head=shared needs value_model=None"):
        PPOTrainer(PPOConfig(value_head="shared"), *args, load_scalar_model(tiny_dir), tok, PROMPTS)
    with pytest.raises(ValueError, match="value_head=separate needs a value_model"):
        PPOTrainer(PPOConfig(), *args, None, tok, PROMPTS)
    with pytest.raises(ValueError, match="value_head must be one of"):
        PPOTrainer(PPOConfig(value_head="both"), *args, None, tok, PROMPTS)
    with pytest.raises(ValueError, match="ptx_ratio must be > 0"):
        PPOTrainer(PPOConfig(ptx_ratio=0.0), *args, load_scalar_model(tiny_dir), tok, PROMPTS)
    assert isinstance(PolicyWithValueHead(load_policy(tiny_dir)).value_head, torch.nn.Linear)


@pytest.mark.parametrize("ptx_ratio", [None, 0.75])
def test_pretraining_sequences_per_step_follow_ptx_ratio(tiny_dir, ptx_ratio):
    trainer, _ = _ppo_trainer(tiny_dir, "shared", ptx_coef=0.5, ptx_ratio=ptx_ratio, ptx_batch_size=3, ppo_epochs=2,
                                 ptx_max_length=16)
    cfg = trainer.cfg
    consumed = []
    stream = trainer._pretrain

    def counting():
        for seq in stream:
            consumed.append(len(seq))
            yield seq

    trainer._pretrain = counting()
    minibatches = cfg.batch_size // cfg.mini_batch_size * cfg.ppo_epochs
    # ratio: sequences per episode in each minibatch, i.e. per episode and PPO epoch; else a fixed count per minibatch
    expected = ptx_ratio * cfg.batch_size * cfg.ppo_epochs if ptx_ratio is not None else cfg.ptx_batch_size * minibatches
    per_step = []
    for _ in range(2):
        start = len(consumed)
        stats = trainer.step(trainer.rollout(PROMPTS[: cfg.batch_size]))
        per_step.append(len(consumed) - start)
        assert stats["ptx_sequences"] == per_step[-1] and math.isfinite(stats["ptx_loss"])
    assert per_step == [expected] * 2
    assert trainer.ptx_sequences == len(consumed) and trainer.ptx_forwards == 2 * minibatches
    assert all(1 < n <= cfg.ptx_max_length for n in consumed)


@pytest.mark.parametrize("value_head", ["separate", "shared"])
def test_one_minibatch_first_update_reuses_the_rollout_forward_with_the_same_result(tiny_dir, value_head):
    """With batch = one minibatch the rollout's policy/value forward keeps its graph and the first
    update back-propagates through it. A run that drops that graph (so the update recomputes the
    forward) ends with the same statistics and weights, having made one policy/value forward more
    per iteration."""
    runs = {}
    for reuse in (True, False):
        trainer, policy = _ppo_trainer(tiny_dir, value_head, batch_size=4, mini_batch_size=4, ppo_epochs=2)
        rollout, forward = trainer.rollout, trainer._policy_and_values
        calls, kept = [], []

        def counted(*a, forward=forward, **k):
            calls.append(torch.is_grad_enabled())
            return forward(*a, **k)

        def rollout_maybe_without_graph(prompts, rollout=rollout, reuse=reuse):
            ro = rollout(prompts)
            kept.append(ro.first_forward is not None and all(t.requires_grad for t in ro.first_forward[::2]))
            if not reuse:
                ro.first_forward = None
            return ro

        trainer._policy_and_values, trainer.rollout = counted, rollout_maybe_without_graph
        init = _params(trainer.accelerator.unwrap_model(trainer.policy))
        history = trainer.train()
        params = _params(trainer.accelerator.unwrap_model(trainer.policy))
        if trainer.value_model is not None:
            params.update({f"value.{n}": p for n, p in _params(trainer.value_model).items()})
        runs[reuse] = history, params, calls
        assert max((params[n] - init[n]).abs().max().item() for n in init) > 1e-3  # the updates moved the weights (Adam: about lr per update)
        assert kept == [True, True]  # logprobs and values of the rollout forward carry a graph
    (h1, p1, c1), (h0, p0, c0) = runs[True], runs[False]
    # per iteration: the rollout's forward (epoch 1's with reuse), [epoch 1 again without reuse,] epoch 2
    assert c1 == [True, True] * 2 and c0 == [True, True, True] * 2
    for a, b in zip(h1, h0):
        for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "kl", "reward_mean", "explained_variance"):
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-5), k
    assert p1.keys() == p0.keys()
    assert {n: (p1[n] - p0[n]).abs().max().item() for n in p1 if not torch.allclose(p1[n], p0[n], atol=1e-5)} == {}


def test_several_minibatches_keep_no_rollout_graph(tiny_dir):
    trainer, _ = _ppo_trainer(tiny_dir, "separate")  # batch 4 in minibatches of 2
    ro = trainer.rollout(PROMPTS[:4])
    assert ro.first_forward is None and not ro.logprobs.requires_grad and not ro.values.requires_grad


def test_ppo_lora_policy_uses_itself_without_adapters_as_the_exact_reference(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=8, lr=5e-2, value_lr=1e-3, max_prompt_length=32,
                    lora=LoRAConfig(r=4, alpha=8.0, target_modules=["q_proj", "v_proj"]),
                    value_lora=LoRAConfig(r=2, alpha=4.0, target_modules=["q_proj"]))
    reward_model = load_scalar_model(tiny_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(reward_model.score.weight, std=0.5)
    with pytest.raises(ValueError, match="pass ref_policy=None"):
        PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), reward_model, load_scalar_model(tiny_dir), tok, PROMPTS,
                   chat_template="false")
    trainer = PPOTrainer(cfg, load_policy(tiny_dir), None, reward_model, load_scalar_model(tiny_dir), tok, PROMPTS,
                         chat_template="false", seed=0)
    policy = trainer.policy_model
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    value = trainer.accelerator.unwrap_model(trainer.value_model)
    v_train = {n for n, p in value.named_parameters() if p.requires_grad}
    assert {n for n in v_train if "lora_" not in n} == {"base_model.model.score.weight"}

    ro = trainer.rollout(trainer._next_batch())
    assert torch.allclose(ro.logprobs, ro.ref_logprobs, atol=1e-6)  # B = 0 at the start: the policy is the reference
    before = _params(policy)
    trainer.step(ro)
    trainer.step(trainer.rollout(trainer._next_batch()))
    moved = {n for n, p in policy.named_parameters() if not torch.equal(before[n], p.detach())}
    assert moved and moved <= trainable  # only adapters moved; the base weights (the reference) are untouched
    # the reference (adapters off) is still exactly the untouched SFT model; the policy has moved away from it
    base = load_policy(tiny_dir).eval()
    ro2 = trainer.rollout(trainer._next_batch())
    seq, attn, P = ro2.sequences, ro2.attention_mask, ro2.prompt_len
    with torch.no_grad():
        base_lp = trainer._logprobs(base, seq, attn, P)
    assert torch.allclose(ro2.ref_logprobs, base_lp, atol=1e-5)
    assert (ro2.logprobs - ro2.ref_logprobs).abs().max().item() > 1e-3
    assert policy.training  # the reference forward put the policy back in training mode
    policy.eval()
    with torch.no_grad():
        adapted = policy(input_ids=seq, attention_mask=attn).logits
    path = trainer.save(tmp_path / "ppo", "ppo", {"ppo": "lora"}, {}, {})
    merged = load_policy(str(path)).eval()
    assert type(merged) is type(base) and not (path / "adapter_config.json").exists()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=seq, attention_mask=attn).logits, adapted, atol=1e-4)


def _length_only_comparisons(n: int, seed: int) -> list[Comparison]:
    """Pairs whose preferred completion is the longer one in three of four, the shorter in the fourth; the words are
    drawn at random, so length is the only thing the preferred side has in common."""
    import random

    rng, words = random.Random(seed), ["red", "blue", "cat", "dog", "sun", "tree", "car", "boat", "milk", "rain"]
    out = []
    for i in range(n):
        long_, short = " ".join(rng.choices(words, k=rng.randint(8, 12))), " ".join(rng.choices(words, k=rng.randint(1, 3)))
        texts = (long_, short) if i % 2 == 0 else (short, long_)  # the longer text sits first or second
        longer_wins = i % 4 != 3
        order = (0, 1) if (texts[0] == long_) == longer_wins else (1, 0)
        out.append(Comparison(str(i), f"\n\nHuman: say something {i}\n\nAssistant:", texts, order, "t"))
    return out


def _length_slope(trainer, comps) -> float:
    """Mean r(longer) - r(shorter) over ``comps`` (reward units): how much of the score is length."""
    prompts = [c.prompt for c in comps]
    with torch.no_grad():
        win = trainer.score(prompts, [c.completions[c.ranking[0]] for c in comps])
        lose = trainer.score(prompts, [c.completions[c.ranking[1]] for c in comps])
    return float((win - lose).mean())


def test_rm_length_term_fits_the_labels_length_preference_in_alpha_not_in_the_score(tiny_dir, tmp_path):
    tok = load_tokenizer(tiny_dir)
    train, held_out = _length_only_comparisons(32, seed=0), _length_only_comparisons(16, seed=1)
    kw = dict(lr=2e-3, head_lr=2e-2, epochs=4, batch_size=4, max_length=48, max_prompt_length=24, warmup_ratio=0.0,
              normalize_to_demos=False)
    plain = RewardModelTrainer(RMConfig(**kw), load_scalar_model(tiny_dir), tok, train, held_out, chat_template="false", seed=0)
    plain_result = plain.train()
    assert plain.length_coef is None and plain_result.length_coef is None
    debiased = RewardModelTrainer(RMConfig(**kw, length_term=True), load_scalar_model(tiny_dir), tok, train, held_out,
                                  chat_template="false", seed=0)
    result = debiased.train()
    lens = {id(c): debiased.completion_lengths(c) for c in train}
    assert result.length_coef == debiased.length_coef == pytest.approx(length_coefficient(ranked_token_differences(train, lens)))
    assert result.length_coef > 1.0  # the labels prefer the longer text in 3 of 4 pairs
    # without the term the score learns length (held-out longer texts score higher); with it, alpha carries most of that
    plain_slope, debiased_slope = _length_slope(plain, held_out), _length_slope(debiased, held_out)
    assert plain_slope > 0.3  # 0.58 when written
    assert debiased_slope < 0.5 * plain_slope  # 0.19 when written
    # what the trainer saves and judges read is r alone: a stock sequence classifier, no alpha in it
    path = debiased.save(tmp_path / "rm", {"rm": "length_term"}, {}, {})
    assert not any("alpha" in k for k in load_file(path / "model.safetensors"))


def test_rm_length_term_counts_completions_in_full_not_as_cut_at_max_length(tiny_dir):
    """A pair whose two completions are both cut at ``max_length`` has no length difference as the RM reads it; the
    length covariate counts them in full, as the labeler read them."""
    tok = load_tokenizer(tiny_dir)
    comp = Comparison("0", "\n\nHuman: say something\n\nAssistant:", (" ".join(["cat"] * 40), " ".join(["dog"] * 20)), (0, 1), "t")
    trainer = RewardModelTrainer(RMConfig(max_length=16, max_prompt_length=8, length_term=True), load_scalar_model(tiny_dir), tok,
                                 [comp], [], chat_template="false", seed=0)
    cut, full = trainer.sequence_lengths(comp), trainer.completion_lengths(comp)
    assert cut == [16, 16]  # both sequences end at max_length
    assert full == [len(tok(" ".join(["cat"] * 40), add_special_tokens=False)["input_ids"]),
                    len(tok(" ".join(["dog"] * 20), add_special_tokens=False)["input_ids"])]
    assert full[0] > full[1] > 16
    assert ranked_token_differences([comp], {id(comp): full}) == [full[0] - full[1]]
