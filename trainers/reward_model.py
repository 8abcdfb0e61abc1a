"""Stage 2, the reward model (paper section 3.5 "RM", eq. 1).

r(x, y) is a scalar head on the final token of prompt+completion. A batch element is one prompt
with its K ranked completions (K may differ between prompts, e.g. 2 for hh-rlhf and 4..9 for the
simulated labeler): one forward per completion, then all C(K, 2) pairs, less the tied ones, enter
:func:`trainers.losses.kwise_ranking_loss`. After training, the demonstrations' mean score becomes the
centring offset ("so that the labeler demonstrations achieve a mean score of 0"): the head has no
bias (a stock ``AutoModelForSequenceClassification``), so the offset is recorded in ``config.json``
and subtracted where the paper uses the centred reward, PPO's reward (:mod:`harness.models`).

The saved checkpoint is a standard sequence classifier: its tokenizer's pad token is not EOS
(:func:`harness.models.with_reward_pad`), so transformers, ``pipeline("text-classification")``, TRL
and OpenRLHF read the same token, and return the same score, as the harness.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from harness.config import RMConfig
from harness.judging.reward_model import encode_batch, read_rewards, rewards_at_last_token
from harness.judging.shared_trunk import decoder_stack, rest_states
from harness.models import add_lora, merge_lora, record_reward_model, scalar_head, with_reward_pad
from harness.prompting import encode_pair, uses_chat_template
from harness.records import Comparison, Demonstration
from trainers.common import (
    LoopSpec,
    batches,
    freeze_lower_layers,
    optimizer_and_schedule,
    padding_stats,
    save_checkpoint,
    seed_everything,
    steps_per_epoch,
    train_epochs,
)
from trainers.frozen_trunk import TrunkCache
from trainers.losses import kwise_ranking_loss, length_coefficient, pairwise_outcomes
from trainers.tracking import Tracking, finish_tracking, make_accelerator

log = logging.getLogger(__name__)

#: the most memory the frozen trunk's kept outputs may take (bytes); a larger training set runs every epoch whole
TRUNK_CACHE_MAX_BYTES = 4 * 2**30


@dataclass
class PairwiseAccuracy:
    """Pairwise accuracy of a reward model on ranked comparisons, overall and per K.

    ``outcomes``: one entry per ranked (untied) pair, 1 if r_w > r_l, 0.5 if equal, 0 otherwise;
    ``pair_k``: the K of the comparison each outcome came from (same length). ``accuracy`` is the
    mean of ``outcomes`` (NaN with no pairs), so a K=9 list weighs C(9, 2) = 36 pairs.
    ``by_k[K] = {"accuracy", "pairs", "comparisons"}`` restricts the same mean to lists of K completions.
    """

    accuracy: float
    outcomes: list[float]
    pair_k: list[int]
    by_k: dict[int, dict[str, float]]

    @classmethod
    def from_outcomes(cls, outcomes: list[float], pair_k: list[int], comparisons_by_k: dict[int, int]) -> PairwiseAccuracy:
        """Aggregate per-pair outcomes (and the K of each) into the overall and per-K accuracy."""
        by_k: dict[int, dict[str, float]] = {}
        for k in sorted(comparisons_by_k):
            sel = [o for o, kk in zip(outcomes, pair_k) if kk == k]
            by_k[k] = {"accuracy": sum(sel) / len(sel) if sel else float("nan"), "pairs": len(sel),
                       "comparisons": comparisons_by_k[k]}
        acc = sum(outcomes) / len(outcomes) if outcomes else float("nan")
        return cls(acc, outcomes, pair_k, by_k)


@dataclass
class RMResult:
    """Per-step train loss and held-out pairwise accuracy (overall and per K)."""

    train_losses: list[float] = field(default_factory=list)
    val_accuracy: float = float("nan")
    val_pairs: int = 0
    val_correct_per_pair: list[float] = field(default_factory=list)  # 1 / 0 / 0.5 (tie) per ranked pair
    val_pair_k: list[int] = field(default_factory=list)  # K of the comparison of each entry above
    val_accuracy_by_k: dict[int, dict[str, float]] = field(default_factory=dict)  # K -> accuracy, pairs, comparisons
    length_coef: float | None = None  # rm.length_term's alpha after training (reward units per 100 tokens)


def ranked_token_differences(comps: list[Comparison], seq_lengths: dict[int, list[int]]) -> list[int]:
    """``tokens(w) - tokens(l)`` for every ranked pair (w above l, ties left out) of every comparison.

    ``seq_lengths[id(c)]``: the tokens of each of ``c``'s completions (or sequences) in ranking order (best first),
    e.g. :meth:`RewardModelTrainer.completion_lengths`; a prompt's tokens, shared by a comparison's sequences,
    cancel in the difference.
    """
    out = []
    for c in comps:
        lens, levels = seq_lengths[id(c)], c.rank_levels
        out += [lens[w] - lens[l] for w in range(c.k) for l in range(c.k) if levels[w] < levels[l]]
    return out


class RewardModelTrainer:
    """Trains a scalar-head model (:func:`harness.models.load_scalar_model`) on ranked comparisons.

    ``tokenizer`` is copied and given a pad token other than EOS (:func:`harness.models.with_reward_pad`;
    the model's embedding may grow by that token): :attr:`tokenizer` is the one saved with the model.
    ``offset`` is the centring offset, None until :meth:`normalize_to_demonstrations`.
    """

    def __init__(self, cfg: RMConfig, model, tokenizer, train: list[Comparison], val: list[Comparison],
                 chat_template: str = "auto", seed: int = 0, tracking: Tracking | None = None):
        if not train:
            raise ValueError("RewardModelTrainer: no training comparisons")
        tokenizer = with_reward_pad(model, tokenizer)  # before the optimiser: the embedding may be replaced
        self.cfg, self.tokenizer, self.chat_template, self.seed = cfg, tokenizer, chat_template, seed
        self.offset: float | None = None
        self.train_set, self.val_set = train, val
        self.accelerator: Accelerator = make_accelerator(tracking, mixed_precision=cfg.mixed_precision,
                                                         step_scheduler_with_optimizer=False)
        if cfg.lora.r > 0:
            if cfg.trainable_layers:
                raise ValueError(f"reward model: lora.r={cfg.lora.r} and trainable_layers={cfg.trainable_layers} are two ways "
                                 "to train part of the model; set one (trainable_layers=null with LoRA)")
            model = add_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules, task_type=None)
            scalar_head(model).requires_grad_(True)  # a new head is not an adapter: it trains in full
            self.n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        else:
            self.n_trainable = freeze_lower_layers(model, cfg.trainable_layers)
        steps = cfg.epochs * steps_per_epoch(len(train), cfg.batch_size, cfg.grad_accum, self.accelerator.num_processes)
        opt, sched = optimizer_and_schedule(model, cfg.lr, steps, cfg.warmup_ratio, head=scalar_head(model), head_lr=cfg.head_lr)
        self.model, self.opt, self.sched = self.accelerator.prepare(model, opt, sched)
        self.length_coef: float | None = None  # rm.length_term's alpha, fitted by train()
        self.total_steps = steps
        # top blocks only, several epochs, one process: the frozen trunk's output per sequence is kept from the first
        # epoch, and the later ones run only the top blocks (trainers/frozen_trunk.py)
        stack = decoder_stack(model)
        n_frozen = len(stack.layers) - cfg.trainable_layers if stack is not None and cfg.trainable_layers else 0
        self.trunk_cache = (TrunkCache(n_frozen) if n_frozen >= 1 and cfg.epochs > 1 and cfg.lora.r == 0
                            and self.accelerator.num_processes == 1 else None)

    def score(self, prompts: list[str], completions: list[str], training: bool = False) -> torch.Tensor:
        """r(x, y) for aligned lists of prompts and completions: ``[N]`` (reward units, the stock uncentred score).
        ``training``: the pairs are training data, whose trunk output :attr:`trunk_cache` keeps (when set)."""
        ids, attn = encode_batch(self.tokenizer, prompts, completions, max_length=self.cfg.max_length,
                                 max_prompt_length=self.cfg.max_prompt_length, chat_template=self.chat_template)
        dev = self.accelerator.device
        ids, attn = ids.to(dev), attn.to(dev)
        if not training or self.trunk_cache is None:
            return rewards_at_last_token(self.model, ids, attn)
        with self.accelerator.autocast():  # the prepared model's own forward, which would autocast, is bypassed
            hidden = rest_states(self.model, self.trunk_cache.n_shared, self.trunk_cache.states(self.model, ids, attn), attn)
            return read_rewards(self.model, scalar_head(self.model)(hidden).squeeze(-1), ids, attn)

    def _batch_rewards(self, comps: list[Comparison], training: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward for all completions of ``comps``.

        Returns ``rewards [B, K_max]`` in each record's ranking order (best first), the validity
        mask ``[B, K_max]`` (lists shorter than K_max are padded at the end) and the rank levels
        ``[B, K_max]`` (:attr:`Comparison.rank_levels`; tied completions share a level).
        """
        k_max = max(c.k for c in comps)
        prompts = [c.prompt for c in comps for _ in c.ranking]
        texts = [c.completions[i] for c in comps for i in c.ranking]
        flat = self.score(prompts, texts, training)
        rewards = torch.zeros(len(comps), k_max, device=flat.device)
        valid = torch.zeros(len(comps), k_max, dtype=torch.bool, device=flat.device)
        levels = torch.zeros(len(comps), k_max, dtype=torch.long, device=flat.device)
        pos = 0
        for b, c in enumerate(comps):
            k = c.k
            rewards[b, :k], valid[b, :k] = flat[pos : pos + k], True
            levels[b, :k] = torch.tensor(c.rank_levels, device=flat.device)
            pos += k
        return rewards, valid, levels

    @torch.no_grad()
    def evaluate(self, comps: list[Comparison] | None = None) -> PairwiseAccuracy:
        """Pairwise accuracy on held-out comparisons (default: the validation set), overall and per K.

        Every ranked pair (w above l) scores 1 if r_w > r_l, 0.5 if equal, 0 otherwise; tied
        pairs do not count. See :class:`PairwiseAccuracy`; accuracy is NaN with no comparisons.
        """
        comps = self.val_set if comps is None else comps
        self.model.eval()
        outcomes: list[float] = []
        pair_k: list[int] = []
        n_by_k: dict[int, int] = {}
        for chunk in batches(comps, self.cfg.batch_size):
            out, pair = pairwise_outcomes(*self._batch_rewards(chunk))
            for b, c in enumerate(chunk):
                values = out[b][pair[b]].tolist()
                outcomes += values
                pair_k += [c.k] * len(values)
                n_by_k[c.k] = n_by_k.get(c.k, 0) + 1
        self.model.train()
        return PairwiseAccuracy.from_outcomes(outcomes, pair_k, n_by_k)

    def sequence_lengths(self, comp: Comparison) -> list[int]:
        """Tokens of each ranked (prompt + completion) sequence of ``comp``, as :meth:`score` encodes them."""
        return [len(encode_pair(comp.prompt, comp.completions[i], self.tokenizer, self.cfg.max_length, self.cfg.max_prompt_length,
                                self.chat_template).input_ids) for i in comp.ranking]

    def completion_lengths(self, comp: Comparison) -> list[int]:
        """Tokens of each ranked completion of ``comp`` in full (not cut at ``max_length``, as the labeler read it),
        in ranking order: the length covariate of ``rm.length_term``."""
        return [len(ids) for ids in self.tokenizer([comp.completions[i] for i in comp.ranking], add_special_tokens=False)["input_ids"]]

    def train(self, log_path: str | Path | None = None, state_dir: str | Path | None = None, resume: bool = False) -> RMResult:
        """Train for ``cfg.epochs``, logging ``{step, loss, accuracy, tokens, padded_tokens, lr}``; then evaluate on val.

        With ``group_by_length`` a comparison's length is its longest sequence (all of a batch's
        sequences are padded together). Trackers, if any, are closed at the end. Training-state
        checkpoints go to ``state_dir`` every ``cfg.save_steps`` steps; ``resume`` continues from the
        newest one there.
        """
        seed_everything(self.seed)
        result = RMResult()
        seq_lengths = {id(c): self.sequence_lengths(c) for c in self.train_set}
        if self.trunk_cache is not None:
            need = sum(map(sum, seq_lengths.values())) * self.accelerator.unwrap_model(self.model).config.hidden_size * 4
            if need > TRUNK_CACHE_MAX_BYTES:
                log.warning("RM: the frozen trunk's output of the training set would take %.1f GiB (> %.0f GiB): every epoch "
                            "runs all blocks", need / 2**30, TRUNK_CACHE_MAX_BYTES / 2**30)
                self.trunk_cache = None

        if self.cfg.length_term:
            # the completions' full lengths: a pair cut at max_length still differs in length as its labeler saw it
            full_lengths = {id(c): self.completion_lengths(c) for c in self.train_set}
            self.length_coef = length_coefficient(ranked_token_differences(self.train_set, full_lengths))
            log.info("RM: length term alpha %+.4f reward units per 100 tokens, fitted on %d training comparisons' ranked pairs "
                     "(rm.length_term: the loss reads r + alpha * completion tokens / 100; the saved score is r alone)",
                     self.length_coef, len(self.train_set))

        def loss_fn(chunk: list[Comparison]):
            rewards, valid, levels = self._batch_rewards(chunk, training=True)
            if self.length_coef is not None:
                tokens = torch.zeros_like(rewards)
                for b, c in enumerate(chunk):
                    tokens[b, : c.k] = torch.tensor(full_lengths[id(c)], dtype=rewards.dtype)
                rewards = rewards + self.length_coef * tokens / 100.0
            loss, n_pairs, n_correct = kwise_ranking_loss(rewards, valid, levels)
            return loss, {"accuracy": (n_correct / n_pairs).item(), **padding_stats([n for c in chunk for n in seq_lengths[id(c)]])}

        spec = LoopSpec(self.cfg.batch_size, self.cfg.grad_accum, self.cfg.epochs, self.cfg.max_grad_norm, self.cfg.save_steps,
                        self.cfg.keep_checkpoints, Path(state_dir) if state_dir else None, resume)
        result.train_losses = train_epochs(self.accelerator, self.model, self.opt, self.sched, self.train_set, spec, seed=self.seed,
                                           loss_fn=loss_fn, desc="RM", log_path=log_path,
                                           lengths=[max(seq_lengths[id(c)]) for c in self.train_set] if self.cfg.group_by_length else None)
        if self.trunk_cache is not None:
            c = self.trunk_cache
            log.info("RM: the frozen trunk (embeddings + %d blocks) ran for %d training sequences (%.0f MiB kept); %d "
                     "later reads of them ran only the top blocks", c.n_shared, c.misses, c.nbytes / 2**20, c.hits)
        result.length_coef = self.length_coef
        acc = self.evaluate()
        result.val_accuracy, result.val_correct_per_pair, result.val_pair_k = acc.accuracy, acc.outcomes, acc.pair_k
        result.val_accuracy_by_k, result.val_pairs = acc.by_k, len(acc.outcomes)
        finish_tracking(self.accelerator)
        return result

    @torch.no_grad()
    def normalize_to_demonstrations(self, demos: list[Demonstration]) -> float:
        """Set the centring offset to the demonstrations' mean score and return it (reward units).

        The centred reward ``score - offset`` then has mean 0 on ``demos`` (paper section 3.5). The
        weights do not change, so the stock score and pairwise accuracy do not either. Raises
        ``ValueError`` with no demonstrations (the offset would be undefined).
        """
        if not demos:
            raise ValueError("normalize_to_demonstrations: no demonstrations to centre the reward on")
        self.model.eval()
        rewards = torch.cat([self.score([d.prompt for d in chunk], [d.completion for d in chunk]) for chunk in batches(demos, self.cfg.batch_size)])
        self.offset = rewards.mean().item()
        self.model.train()
        return self.offset

    def save(self, out_dir: str | Path, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the reward model as a Hugging Face one-label sequence-classification checkpoint with ``run.json``
        (LoRA adapters merged into the weights first, so this ends training).

        ``config.json`` records the centring offset and the chat-template setting
        (:func:`harness.models.record_reward_model`).
        """
        model = merge_lora(self.accelerator.unwrap_model(self.model))  # LoRA: (alpha / r) B A added into W; the trainer is done
        record_reward_model(model, chat_template=uses_chat_template(self.tokenizer, self.chat_template), offset=self.offset)
        if self.accelerator.is_main_process:
            save_checkpoint(model, self.tokenizer, out_dir, "rm", config, fingerprints, metrics)
        self.accelerator.wait_for_everyone()
        return Path(out_dir)
