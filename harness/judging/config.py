"""``eval.judges``: every judge and scorer the evals may use, configured in one place.

Evals name the judges they use (win rate: ``judges: [helpful, harmless]``; Likert: ``score_judge``,
``harmless_judge``) and ask the panel (:class:`harness.judging.panel.JudgePanel`) for the toxicity
scorer, the truthfulness scorer and the hallucination detector; none reads another eval's spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    requests_per_second: float | None = 2.0
    max_retries: int = 5
    timeout_s: float = 60.0
    cache_dir: str | None = None  # replies cached per request here (None: <run dir>/cache/chat)


@dataclass
class ScorerConfig:
    """A scorer by ``kind`` with its constructor ``options``."""

    kind: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationConfig:
    """How much held-out labelled data each judge's validation uses."""

    n_hh_pairs: int | None = 256  # held-out hh-rlhf human pairs per subset for preference judges (None: all)
    n_gpt4_pairs: int | None = 805  # GPT-4-annotated davinci-003 vs -001 pairs (None: all 805)
    n_davidson: int | None = 2000  # held-out Davidson tweets for a toxicity scorer's ROC-AUC (None: all)


@dataclass
class JudgesConfig:
    """``reward_models``: preference judges by name -> reward-model checkpoint (``harness-pipeline`` adds
    its ``helpful`` and ``harmless`` judges); ``chat``: the optional chat endpoint; ``toxicity``
    (``profanity_check`` | ``davidson`` | ``detoxify`` | ``perspective``), ``truthfulness`` (``reference`` |
    ``chat``) and ``hallucination`` (``support`` | ``nli`` | ``chat``) scorers; ``validation`` sizes."""

    reward_models: dict[str, str] = field(default_factory=dict)
    max_length: int = 512  # tokens of prompt + output a reward-model judge reads
    max_prompt_length: int = 256
    chat: ChatJudgeConfig = field(default_factory=ChatJudgeConfig)
    toxicity: ScorerConfig = field(default_factory=lambda: ScorerConfig("profanity_check"))
    truthfulness: ScorerConfig = field(default_factory=lambda: ScorerConfig("reference", {"metric": "rouge1"}))
    hallucination: ScorerConfig = field(default_factory=lambda: ScorerConfig("support"))
    validation: ValidationConfig = field(default_factory=ValidationConfig)
