"""Typed configuration: dataclasses registered in Hydra's ConfigStore; YAML in ``conf/`` extends them.

Each stage has an XConfig here (trl style: SFTConfig + SFTTrainer). Field comments give units and
the paper's value where it has one (Ouyang et al. 2022, appendix C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness.model_config import ModelConfig
from harness.ranges import existing_path, model_path, one_of, ranged


@dataclass
class DataConfig:
    """Where data comes from and how much of it each stage uses. Splits are seeded hashes."""

    data_dir: str | None = "${oc.env:HARNESS_DATA_DIR,null}"  # null -> Hugging Face hub ids below
    seed: int = 0
    hh_subsets: list[str] = field(
        default_factory=lambda: ["helpful-base", "helpful-online", "helpful-rejection-sampled", "harmless-base"]
    )
    # hh_rlhf prompts are split by a seeded hash: the policy's RM and the judge never share a prompt
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"rm_train": 0.45, "rm_val": 0.05, "judge_train": 0.45, "judge_val": 0.05}
    )
    n_sft_train: int = ranged(160, ge=1)  # demonstrations (self_instruct seeds locally: 175 in all)
    n_sft_val: int = ranged(15, ge=1)
    n_rm_train: int = ranged(256, ge=1)  # human comparisons for the policy's (proxy) RM
    n_rm_val: int = ranged(128, ge=1)
    n_judge_train: int = ranged(256, ge=1)  # disjoint human comparisons for the evaluation judge
    n_judge_val: int = ranged(128, ge=1)
    n_ppo_prompts: int = ranged(256, ge=1)  # hh_rlhf first user turns from the rm_train prompts
    max_ppo_prompt_chars: int = ranged(300, ge=1)
    n_eval_prompts: int = ranged(32, ge=1)  # AlpacaEval instructions (no stage trains on them)
    # simulated labeler (harness-label): hh_rlhf first user turns from the rm_train prompts, none of
    # them a PPO prompt, an AlpacaEval instruction or a first turn of the judge split
    n_label_prompts: int = ranged(256, ge=1)
    max_label_prompt_chars: int = ranged(300, ge=1)
    comparisons_val_fraction: float = ranged(0.2, gt=0, lt=1)  # held-out share of a comparisons file (seeded hash of the prompt)
    pretrain_chunk_chars: int = ranged(1000, ge=1)
    hub_demonstrations: str = "tatsu-lab/alpaca"
    hub_hh_rlhf: str = "Anthropic/hh-rlhf"
    hub_alpaca_eval: str = "tatsu-lab/alpaca_eval"
    hub_pretrain: str = "wikitext"
    hub_pretrain_name: str = "wikitext-2-raw-v1"


@dataclass
class TrackingConfig:
    """Experiment trackers beside the JSONL train logs, through accelerate (``trainers/tracking.py``).

    Each training stage (SFT, RM, judge, PPO, PPO-ptx) is one tracker run named after the stage,
    with the stage's flattened config as its hyperparameters and every logged step as scalars.
    """

    log_with: list[str] = field(default_factory=list)  # accelerate tracker names: tensorboard | wandb | mlflow | ...; [] = JSONL only
    project: str = "instructgpt-harness"  # tensorboard: sub-folder name; wandb project; mlflow experiment
    dir: str | None = None  # local logging folder, one sub-folder per stage (None: <stage checkpoint's parent>/trackers)


@dataclass
class LoRAConfig:
    """LoRA adapters through peft (Hu et al. 2021, arXiv 2106.09685) for SFT and for reward models (the RM and
    the judges). ``r`` = 0: off (full fine-tuning, or the top ``trainable_layers`` blocks of an RM).

    The adapters are merged into the base weights when the checkpoint is saved, so later stages load
    a plain causal LM or a stock one-label sequence classifier. A reward model's scalar head trains in full.
    """

    r: int = ranged(0, ge=0)  # adapter rank; 0 = no LoRA
    alpha: float = ranged(16.0, gt=0)  # the update is scaled by alpha / r
    dropout: float = ranged(0.0, ge=0, lt=1)  # dropout on the adapter's input
    target_modules: list[str] | None = None  # module names; None = peft's default for the architecture (Llama: q_proj, v_proj); [all-linear] = every linear layer but the output head


@dataclass
class ProbeConfig:
    """PPO's probe (:mod:`trainers.probe`): a fixed set of held-out prompts, ``samples`` episodes each, rolled out and
    scored by the proxy RM and the gold reward before training and every ``every`` iterations (and after the last),
    so that reward over KL is measured on the same prompts at every point (Gao et al. 2022 evaluate each policy on one
    held-out prompt set) instead of on each iteration's own batch. ``prompts`` = 0: off."""

    prompts: int = ranged(0, ge=0)  # held-out prompts (harness.selection.probe_prompts); 0 = no probe
    samples: int = ranged(2, ge=1)  # episodes per prompt at each probe
    every: int = ranged(2, ge=1)  # PPO iterations between probes


@dataclass
class SFTConfig:
    """Supervised fine-tuning on demonstrations (paper section 3.5; 16 epochs, cosine lr decay)."""

    lr: float = ranged(1e-5, gt=0)
    epochs: int = ranged(1, ge=1)
    batch_size: int = ranged(8, ge=1)
    grad_accum: int = ranged(1, ge=1)
    warmup_ratio: float = ranged(0.1, ge=0, le=1)
    weight_decay: float = ranged(0.0, ge=0)
    max_length: int = ranged(256, ge=2)  # tokens, prompt + completion
    max_prompt_length: int = ranged(128, ge=1)
    max_grad_norm: float = ranged(1.0, gt=0)
    mixed_precision: str = one_of("no", "bf16", "fp16")  # accelerate: no | bf16 | fp16
    # checkpoint selection (paper 3.5: the SFT model is chosen by RM score on validation prompts,
    # although validation loss keeps rising after epoch 1)
    select_by: str = one_of("last", "rm_score", "loss")  # rm_score (needs selection_rm; the pipeline default) | loss | last
    eval_steps: int = ranged(0, ge=0)  # evaluate a selection candidate every N optimiser steps (0: at each epoch's end)
    selection_max_new_tokens: int = ranged(64, ge=1)  # greedy response length scored by the selection RM
    save_steps: int = ranged(0, ge=0)  # training-state checkpoint every N optimiser steps, for resume (0: never)
    keep_checkpoints: int = ranged(1, ge=1)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    residual_dropout: float | None = ranged(None, ge=0, lt=1)  # dropout probability during SFT (paper C.1: 0.2); None = the model's own; see models.dropout_fields
    group_by_length: bool = True  # batch demonstrations of similar token length together (less padding)
    # train only the top N blocks (+ final norm; a tied LM head stays frozen with the embeddings): the SFT model keeps
    # the base model's lower layers, so judges trained from the base share PPO's frozen trunk too. null: all blocks
    trainable_layers: int | None = ranged(None, ge=1)


@dataclass
class RMConfig:
    """Reward model on ranked comparisons (paper eq. 1; 1 epoch, lr 9e-6 for 6B)."""

    lr: float = ranged(1e-5, gt=0)
    epochs: int = ranged(1, ge=1)
    batch_size: int = ranged(4, ge=1)  # prompts per step; each contributes all C(K, 2) pairs
    grad_accum: int = ranged(1, ge=1)
    warmup_ratio: float = ranged(0.1, ge=0, le=1)
    max_length: int = ranged(256, ge=2)
    max_prompt_length: int = ranged(128, ge=1)
    max_grad_norm: float = ranged(1.0, gt=0)
    head_lr: float | None = ranged(None, gt=0)  # learning rate of the scalar head (None: lr); a new head starts at zero
    trainable_layers: int | None = ranged(None, ge=0)  # train only the top N blocks + head (None: all); cheap RMs on CPU
    normalize_to_demos: bool = True  # centring offset = the demonstrations' mean score, applied to PPO's reward (paper 3.5; harness.models)
    mixed_precision: str = one_of("no", "bf16", "fp16")
    save_steps: int = ranged(0, ge=0)  # training-state checkpoint every N optimiser steps, for resume (0: never)
    keep_checkpoints: int = ranged(1, ge=1)
    group_by_length: bool = True  # batch comparisons of similar token length together (less padding)
    lora: LoRAConfig = field(default_factory=LoRAConfig)  # r > 0: LoRA adapters on every block (+ the full head) instead of trainable_layers
    # length-debiased training: alpha of a logistic length term is fitted on the training pairs first, the loss ranks
    # r(x, y) + alpha * tokens(y) / 100 (y's tokens in full, not cut at max_length), and the model's score is r alone, so the labels' length preference goes to alpha
    # (AlpacaEval LC's length covariate; trainers.losses.length_coefficient)
    length_term: bool = False


@dataclass
class PPOConfig:
    """PPO / PPO-ptx (paper eq. 2 and appendix C.4). ``ptx_coef`` (the paper's gamma) > 0 makes it PPO-ptx
    (:func:`is_ptx`)."""

    steps: int = ranged(8, ge=1)  # PPO iterations, each = one batch of rollouts
    batch_size: int = ranged(16, ge=1)  # episodes per rollout batch
    mini_batch_size: int = ranged(8, ge=1)
    ppo_epochs: int = ranged(1, ge=1)  # passes over each rollout batch
    lr: float = ranged(2e-6, gt=0)
    value_lr: float = ranged(1e-5, gt=0)
    beta: float = ranged(0.02, ge=0)  # KL penalty coefficient (paper: 0.02)
    kl_control: str = one_of("fixed", "adaptive")  # fixed | adaptive (Ziegler et al. 2019)
    kl_target: float | None = ranged(None, gt=0)  # nats/episode, adaptive only
    kl_horizon: float = ranged(10000.0, gt=0)
    ptx_coef: float = ranged(0.0, ge=0)  # the paper's gamma (eq. 2): pretraining (ptx) loss coefficient; > 0 = PPO-ptx (paper: 27.8)
    ptx_batch_size: int = ranged(4, ge=1)  # pretraining sequences per minibatch, when ptx_ratio is null
    ptx_ratio: float | None = ranged(None, gt=0)  # pretraining sequences per episode of each minibatch (paper C.4: 8); overrides ptx_batch_size
    ptx_max_length: int = ranged(128, ge=2)
    discount: float = ranged(1.0, ge=0, le=1)  # GAE discount (paper: 1)
    gae_lambda: float = ranged(0.95, ge=0, le=1)
    cliprange: float = ranged(0.2, gt=0)
    cliprange_value: float = ranged(0.2, gt=0)
    vf_coef: float = ranged(1.0, ge=0)
    value_head: str = one_of("separate", "shared")  # separate: value model initialised from the RM (paper) | shared: scalar head on the policy's trunk
    # gae: advantages from the value model by GAE (paper) | rloo: each episode's score minus the mean score of the other
    # samples of its prompt (leave-one-out baseline; Kool et al. 2019, Ahmadian et al. 2024), no value model
    advantage_estimator: str = one_of("gae", "rloo")
    samples_per_prompt: int = ranged(1, ge=1)  # episodes of each prompt in a batch (batch_size must be a multiple; rloo: >= 2)
    whiten_advantages: bool = True
    whiten_rewards: bool = False  # scale each batch's RM scores to unit variance (mean kept) before the KL penalty
    missing_eos_penalty: float | None = ranged(None, ge=0)  # subtracted from the score of an episode cut off without EOS
    max_prompt_length: int = ranged(128, ge=1)
    max_new_tokens: int = ranged(48, ge=1)
    temperature: float = ranged(1.0, gt=0)
    max_grad_norm: float = ranged(1.0, gt=0)
    mixed_precision: str = one_of("no", "bf16", "fp16")
    save_steps: int = ranged(0, ge=0)  # training-state checkpoint every N PPO iterations, for resume (0: never)
    keep_checkpoints: int = ranged(1, ge=1)
    lora: LoRAConfig = field(default_factory=LoRAConfig)  # r > 0: the policy trains LoRA adapters; the reference = the policy with adapters disabled
    value_lora: LoRAConfig = field(default_factory=LoRAConfig)  # r > 0: the separate value model trains LoRA adapters + its full head
    # train only the top N blocks (+ final norm and heads) of the policy and the separate value model; the frozen trunk
    # (embeddings + lower blocks) then runs once per rollout for every model that shares it (reference, value, reward,
    # gold) and is reused by every PPO epoch (trainers/ppo.py). null: all blocks (or LoRA)
    trainable_layers: int | None = ranged(None, ge=1)
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # reward over KL on fixed held-out prompts (trainers/probe.py)


# --------------------------------------------------------------------------- judges (eval.judges)
# Evals name the judges they use (win rate: judges: [helpful, harmless]; Likert: score_judge, harmless_judge) and
# ask the panel (harness/judging/panel.py) for the toxicity, truthfulness and hallucination scorers.


@dataclass
class ChatJudgeConfig:
    """An OpenAI-compatible chat endpoint (:class:`harness.judging.chat.ChatClient`). When ``enabled`` it is
    a win-rate judge named ``chat:<model>`` beside the reward-model judges, and the scorers of kind
    ``chat`` use it. Off by default."""

    enabled: bool = False
    base_url: str | None = None  # e.g. https://api.openai.com/v1 or a local vLLM server
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key (never the key itself: the config is recorded)
    needs_key: bool = True  # false for a local server that needs none (a dummy key is sent)
    requests_per_second: float | None = ranged(2.0, gt=0)
    max_retries: int = ranged(5, ge=0)
    timeout_s: float = ranged(60.0, gt=0)
    cache_dir: str | None = None  # replies cached per request here (None: <run dir>/cache/chat)


@dataclass
class ScorerConfig:
    """A scorer by ``kind`` with its constructor ``options``."""

    kind: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationConfig:
    """How much held-out labelled data each judge's validation uses."""

    n_hh_pairs: int | None = ranged(256, ge=1)  # held-out hh-rlhf human pairs per subset for preference judges (None: all)
    n_gpt4_pairs: int | None = ranged(805, ge=1)  # GPT-4-annotated davinci-003 vs -001 pairs (None: all 805)
    # a toxicity scorer's agreement with Perspective (Spearman, Pearson, ROC-AUC) on held-out text it was not fitted on:
    # (all: about 13 s once per scorer on 2 CPU cores, then cached; smoke runs take a few hundred of each)
    n_rtp: int | None = ranged(None, ge=2)  # RealToxicityPrompts heldout-part continuations (None: all, 707 offline)
    n_wiki: int | None = ranged(None, ge=2)  # Wikipedia heldout-part comments (None: all, 5,998)
    n_davidson: int | None = ranged(2000, ge=1)  # held-out Davidson tweets, an extra ROC-AUC slice (None: all)
    # TruthfulQA questions (2 reference answers each, leave-one-out) for a truthfulness scorer's agreement (None: all 817)
    n_truthfulqa: int | None = ranged(None, ge=1)


@dataclass
class JudgesConfig:
    """``reward_models``: preference judges by name -> reward-model checkpoint (``harness-pipeline`` adds
    its ``helpful`` and ``harmless`` judges); ``chat``: the optional chat endpoint; ``toxicity``
    (``profanity_check`` | ``davidson`` | ``detoxify`` | ``perspective``), ``truthfulness`` (``reference`` |
    ``chat``) and ``hallucination`` (``support`` | ``nli`` | ``chat``) scorers; ``validation`` sizes."""

    # name -> reward-model checkpoint folder / hub id, or `default`: the harness's own judge of that name
    # (helpful | harmless), trained on first use from `model` with the `judge` recipe and cached (harness/default_judges.py)
    reward_models: dict[str, str] = field(default_factory=dict)
    max_length: int = ranged(512, ge=2)  # tokens of prompt + output a reward-model judge reads
    max_prompt_length: int = ranged(256, ge=1)
    chat: ChatJudgeConfig = field(default_factory=ChatJudgeConfig)
    toxicity: ScorerConfig = field(default_factory=lambda: ScorerConfig("perspective_tfidf_ridge"))
    truthfulness: ScorerConfig = field(default_factory=lambda: ScorerConfig("reference", {"metric": "rouge1"}))
    hallucination: ScorerConfig = field(default_factory=lambda: ScorerConfig("support"))
    validation: ValidationConfig = field(default_factory=ValidationConfig)


@dataclass
class EvalConfig:
    """How the evaluation suite runs (``harness-eval``, the pipeline's eval stage). Each eval's own settings
    are its spec in ``evals.<name>`` (``conf/evals/<name>.yaml``, :mod:`harness.registry`)."""

    run: list[str] = field(default_factory=lambda: ["winrate", "likert", "truthfulqa", "toxicity", "hallucination", "alignment_tax"])
    batch_size: int = ranged(8, ge=1)  # prompts per generate call and per judge forward
    # rows one generate call decodes when a prompt gets several samples (toxicity's k): the samples of a batch of
    # prompts decode together up to this many rows, each from its own seed (harness.generation.generate_samples)
    sample_rows: int = ranged(128, ge=1)
    # tokens of a rendered prompt a policy reads when generating; a longer prompt keeps its last ones, with a warning
    # (console, results/evals.json, report) giving the count per policy and eval
    max_prompt_length: int = ranged(1024, ge=1)
    lm_eval_batch_size: int = ranged(8, ge=1)
    bootstrap_resamples: int = ranged(2000, ge=1)  # of every 95 % interval the run reports
    # generation cache (keyed by weights hash, prompt and decoding), shared by every run on the machine by default;
    # null = <run dir>/cache/generations
    cache_dir: str | None = "${oc.env:HARNESS_GEN_CACHE,${model.cache_dir}/generations}"
    # an outputs-file policy that lacks items an eval needs: error (naming the file, the eval and the ids) |
    # warn (a warning with counts in the console, results/evals.json and the report; the eval scores the items it has)
    outputs_missing: str = one_of("error", "warn")
    judges: JudgesConfig = field(default_factory=JudgesConfig)  # every judge and scorer the evals use


@dataclass
class JudgeConfig:
    """The simulated labeler's judge: what scores each (prompt, completion) (harness/labeler.py)."""

    kind: str = one_of("reward_model", "word_count")  # reward_model (a gold RM checkpoint) | word_count (synthetic, for tests)
    path: str | None = model_path(None)  # reward_model: checkpoint folder, e.g. the pipeline's checkpoints/judge
    name: str | None = None  # recorded as source "simulated:<name>"; default: the checkpoint folder's name, or kind
    batch_size: int = ranged(8, ge=1)  # completions per judge forward
    max_length: int = ranged(512, ge=2)  # tokens, prompt + completion, as the judge sees them
    max_prompt_length: int = ranged(256, ge=1)


@dataclass
class LabelConfig:
    """Simulated labeler: K policy samples per prompt, ranked by a judge (paper section 3.5: K = 4..9)."""

    k_min: int = ranged(4, ge=2, le=9)  # completions per prompt, drawn uniformly from [k_min, k_max] per prompt (2 <= k_min <= k_max <= 9)
    k_max: int = ranged(9, ge=2, le=9)
    # target share of pairs the labeler orders against the noise-free judge; 0.274 matches the paper's
    # 72.6 % agreement between training labelers (section 3.4); 0 = the judge's own ranking
    noise_rate: float = ranged(0.0, ge=0, lt=0.5)
    max_new_tokens: int = ranged(64, ge=1)
    temperature: float = ranged(1.0, gt=0)  # sampling temperature; 1 samples the policy's own distribution
    top_p: float = ranged(1.0, gt=0, le=1)
    batch_size: int = ranged(16, ge=1)  # sequences per generate call
    max_prompt_length: int = ranged(128, ge=1)  # tokens


@dataclass
class StageConfig:
    """Common to every stage app: model, data, seed, where to write."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    # where every model runs (harness/devices.py): auto (CUDA, else MPS, else CPU) | cpu | cuda | cuda:<index> | mps.
    # The eval and the labeler place their models there; the trainers' accelerate runs there.
    device: str = "auto"
    # weights of the models the eval and the labeler load: auto (bfloat16 on a CUDA GPU with native bf16, else
    # float32) | float32 | bfloat16 | float16. The trainers keep float32 weights (<stage>.mixed_precision for bf16 compute).
    dtype: str = one_of("auto", "float32", "bfloat16", "float16")
    out_dir: str = "${hydra:runtime.output_dir}"
    # continue a killed run: a trainer restores its newest training-state checkpoint (every
    # <stage>.save_steps steps) and the pipeline also skips stages whose checkpoint is complete
    resume: bool = False
    # resume even though keys that affect results changed since the run started (harness/resume.py);
    # the changes are recorded in the run directory's run_record.json
    resume_allow_changes: bool = False


def _run_tracking() -> TrackingConfig:
    return TrackingConfig(dir="${out_dir}/trackers")


@dataclass
class SFTApp(StageConfig):
    init_from: str | None = model_path(None)  # checkpoint folder / hub id; default: the base model of `model`
    selection_rm: str | None = model_path(None)  # reward model scoring checkpoint candidates (sft.select_by=rm_score)
    sft: SFTConfig = field(default_factory=SFTConfig)
    tracking: TrackingConfig = field(default_factory=_run_tracking)


@dataclass
class RMApp(StageConfig):
    init_from: str = model_path(MISSING)  # usually the SFT checkpoint
    split: str = one_of("rm", "judge", "judge_helpful", "judge_harmless")  # rm (the policy's RM) | judge_helpful | judge_harmless (held-out evaluation judges) | judge (both); names the checkpoint folder
    comparisons: str | None = existing_path(None)  # a Comparison JSONL (e.g. harness-label output) instead of the split's human data
    rm: RMConfig = field(default_factory=RMConfig)
    tracking: TrackingConfig = field(default_factory=_run_tracking)


@dataclass
class PPOApp(StageConfig):
    policy: str = model_path(MISSING)  # SFT checkpoint: initial policy and frozen reference policy
    reward_model: str = model_path(MISSING)  # RM checkpoint: reward and value-model initialisation
    gold_reward: str | None = model_path(None)  # held-out RM (e.g. the judge) logged beside the proxy reward, not optimised
    ppo: PPOConfig = field(default_factory=PPOConfig)
    tracking: TrackingConfig = field(default_factory=_run_tracking)


@dataclass
class LabelApp(StageConfig):
    policy: str = model_path(MISSING)  # policy checkpoint to sample K completions from (usually SFT)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    label: LabelConfig = field(default_factory=LabelConfig)


@dataclass
class EvalApp(StageConfig):
    # name -> checkpoint folder / hub id, or an outputs file: {outputs: path, format: alpaca_eval|jsonl|csv,
    # instruction_field, output_field} (harness/evals/policies.py)
    policies: dict[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)  # eval.judges: the judges (reward models: never one a policy optimised)
    evals: dict[str, Any] = field(default_factory=dict)  # eval name -> its spec (conf/evals/<name>.yaml)
    # how a judge configured as `default` (eval.judges.reward_models.<name>: default) is trained on first use
    # from `model` and cached (harness/default_judges.py); the same recipe as harness-pipeline's judges
    judge: RMConfig = field(default_factory=RMConfig)
    run_id: str = ""
    tracking: TrackingConfig = field(default_factory=_run_tracking)  # the results table also goes to these trackers


@dataclass
class ReportApp:
    """``harness-report``: exactly one of ``run_dir`` (run report, or with ``compare_to`` a comparison
    report) and ``sweep_dir`` (sweep report over a Hydra multirun directory)."""

    run_dir: str | None = existing_path(None)  # a run directory -> <run_dir>/report.html
    sweep_dir: str | None = existing_path(None)  # a Hydra multirun directory -> <sweep_dir>/sweep_report.html
    # with run_dir: a second run directory or a baseline results.jsonl -> <run_dir>/comparison.html
    compare_to: str | None = existing_path(None)
    out: str | None = None  # write here instead of the default path


@dataclass
class RegressRule:
    """One rule of the regression gate (harness/regress/gate.py): the first rule whose glob ``pattern``
    matches a metric id ``eval/policy/metric{k=v,...}`` (the slice, keys sorted) applies to it. A metric's
    direction always comes from its declaration (harness/declarations.py Metric)."""

    pattern: str = "*"
    tolerance: float | None = ranged(None, ge=0)  # largest drop (in the bad direction) that passes, metric units; None: the declared one
    alpha: float = ranged(0.05, gt=0, le=1)  # significance level of the one-sided paired test (on the multiplicity-adjusted p)


@dataclass
class RegressApp:
    """``harness-regress``: gate ``run_dir`` against ``baseline`` (exit 0 ok, 1 regression, 2 error), or with
    ``snapshot=true`` write the baseline snapshot of ``run_dir`` to ``baseline`` (docs/regression.md)."""

    run_dir: str = MISSING  # a run directory (or its results.jsonl)
    baseline: str = MISSING  # a snapshot .json (e.g. ci/baseline/smoke.json), a run directory or a results.jsonl
    snapshot: bool = False  # write the snapshot of run_dir to baseline instead of gating
    rules: list[RegressRule] = field(default_factory=list)  # first match wins
    default: RegressRule = field(default_factory=RegressRule)  # for metrics no rule matches
    ignore: list[str] = field(default_factory=list)  # glob patterns of metric ids not compared at all
    # provenance kinds whose differences between run and baseline are reported but not an error: any of config_hash,
    # data_fingerprints, eval_versions (harness/regress/provenance.py); [] = every difference is an error (exit 2)
    allow_mismatch: list[str] = field(default_factory=list)
    correction: str = one_of("fdr_bh", "none", "holm", "bonferroni")  # over the paired metrics: none | fdr_bh (Benjamini-Hochberg) | holm | bonferroni
    # unpaired metrics whose rows both carry a 95 % interval regress only if the intervals also do not overlap;
    # false: the tolerance alone decides
    unpaired_intervals: bool = True
    n_resamples: int = ranged(9999, ge=1)  # sign assignments of the permutation test when 2^n exceeds it (else exact)
    seed: int = 0  # of the Monte Carlo permutation test
    markdown: str | None = None  # default <run_dir>/regress/summary.md
    junit: str | None = None  # default <run_dir>/regress/junit.xml
    step_summary: bool = True  # also append the markdown to $GITHUB_STEP_SUMMARY when that variable is set


@dataclass
class RLRun:
    """One RL policy the pipeline trains from the SFT policy: its name (the checkpoint folder and the
    policy's name in results) and its ptx coefficient (the paper's gamma, eq. 2; 0 = PPO, > 0 = PPO-ptx)."""

    name: str = "ppo"
    ptx_coef: float = ranged(0.0, ge=0)


# the pipeline's two held-out evaluation judges (hh-rlhf helpful-* and harmless-base judge-side prompts)
JUDGES = ("judge_helpful", "judge_harmless")
RESERVED_POLICY_NAMES = ("base", "base_fewshot", "sft", "rm", *JUDGES)  # pipeline policy names an RL run cannot take


def is_ptx(ptx_coef: float) -> bool:
    """Whether an RL run with this ptx coefficient (the paper's gamma) is PPO-ptx: ``ptx_coef > 0``.

    The one place that decides it (trainer, stage naming, data loading and reports all ask here).
    """
    return float(ptx_coef) > 0.0


@dataclass
class PipelineApp(StageConfig):
    run_id: str = "${now:%Y%m%d-%H%M%S}"
    # which comparisons train the policy's (proxy) RM: human (hh-rlhf rm split) | simulated (the judge
    # ranks K samples of the SFT policy; order base -> sft -> judge -> label -> rm -> ppo ...)
    rm_data: str = one_of("human", "simulated")
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(select_by="rm_score"))  # by the proxy RM, as in the paper
    rm: RMConfig = field(default_factory=RMConfig)
    judge: RMConfig = field(default_factory=RMConfig)
    label: LabelConfig = field(default_factory=LabelConfig)  # rm_data=simulated only
    ppo: PPOConfig = field(default_factory=PPOConfig)
    # RL policies to train, each {name, ptx_coef} (ptx_coef = the paper's gamma; 0 = plain PPO, > 0 = PPO-ptx); [] = none
    rl_runs: list[RLRun] = field(default_factory=lambda: [RLRun("ppo", 0.0), RLRun("ppo_ptx", 1.0)])
    # the harness's default judges this run trains from its base (checkpoints/judge_<name>): helpful (required: PPO's gold
    # reward and the simulated labeler) and harmless. An eval that names one not listed trains it on first use, as
    # harness-eval does (harness/default_judges.py), so leaving harmless out only saves time when no eval uses it.
    train_judges: list[str] = field(default_factory=lambda: ["helpful", "harmless"])
    # a finished pipeline run directory: its checkpoints/{base,sft,rm,judge_helpful,judge_harmless} are
    # reused read-only and only rl_runs train here (one SFT and one RM for every job of a sweep)
    upstream: str | None = None
    require_upstream: bool = False  # refuse to run without upstream (a sweep job must not train its own SFT and RM)
    eval: EvalConfig = field(default_factory=EvalConfig)
    evals: dict[str, Any] = field(default_factory=dict)  # eval name -> its spec (conf/evals/<name>.yaml)
    pipeline: dict[str, Any] = field(default_factory=dict)  # preset name and notes (conf/pipeline/)
    tracking: TrackingConfig = field(default_factory=_run_tracking)


def register_configs() -> None:
    """Register the schemas so ``conf/*.yaml`` can extend them (``defaults: [<name>_schema]``); the evals'
    specs are registered by their modules (:func:`harness.registry.load_all`)."""
    from harness import registry

    registry.load_all()
    cs = ConfigStore.instance()
    for name, node in [
        ("sft_schema", SFTApp), ("rm_schema", RMApp), ("ppo_schema", PPOApp), ("eval_schema", EvalApp),
        ("label_schema", LabelApp), ("report_schema", ReportApp), ("pipeline_schema", PipelineApp),
        ("regress_schema", RegressApp),
    ]:
        cs.store(name=name, node=node)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
