"""Reward-model scoring: the one place a scalar-head model turns (prompt, output) into r(x, y).

A reward model (:func:`harness.models.load_scalar_model`: a one-label ``AutoModelForSequenceClassification``)
is read where transformers reads it, at the last attended token that is not the pad id
(:func:`harness.models.reward_index`). For the harness's own reward models that token is the
completion's final EOS (paper section 3.5: "a scalar reward" for a prompt and response), and the
score equals what ``AutoModelForSequenceClassification.from_pretrained(dir)`` and
``pipeline("text-classification", model=dir, function_to_apply="none")`` return for the same text.
These functions give the stock (uncentred) score; PPO subtracts the centring offset itself
(:mod:`trainers.rewards`). Every consumer goes through them: the RM trainer's loss, PPO's reward,
SFT's checkpoint selection, the simulated labeler, the win-rate / Likert judges and judge validation.

How a (prompt, output) pair becomes text (:func:`rendering`):

- ``harness``: a reward model the harness trained, rendered as in its training
  (:func:`harness.prompting.encode_pair`: the prompt through the chat template or the hh
  ``Human:/Assistant:`` format, then the completion and EOS), with the ``chat_template`` setting
  recorded in its ``config.json`` (the caller's setting for a new head or a pre-SequenceClassification
  checkpoint, which recorded none);
- ``conversation``: any other reward model whose tokenizer has a chat template (TRL, OpenRLHF and
  RewardBench models): ``apply_chat_template(user/assistant messages)`` of the whole exchange;
- ``plain``: any other reward model: the hh dialogue text ``"\n\nHuman: <prompt>\n\nAssistant: <output>"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import torch

from harness.models import reward_index, reward_record, token_scores
from harness.prompting import encode_pair, pad, render_prompt, to_messages

log = logging.getLogger(__name__)


def rendering(config, tokenizer, chat_template: str = "auto") -> tuple[str, str | None]:
    """``(kind, setting)``: how pairs are rendered for the reward model of ``config`` with ``tokenizer``
    (module docstring): ``("harness", <chat_template setting>)`` (the recorded one, else the caller's
    ``chat_template``), ``("conversation", None)`` or ``("plain", None)``."""
    record = reward_record(config)
    if record is not None:
        return "harness", record.get("chat_template") or chat_template
    return ("conversation", None) if getattr(tokenizer, "chat_template", None) else ("plain", None)


def dialogue_text(tokenizer, prompt: str, output: str, kind: str) -> str:
    """The text a foreign reward model scores for ``(prompt, output)``: ``conversation`` (the tokenizer's chat
    template over :func:`harness.prompting.to_messages` plus the assistant's ``output``) or ``plain`` (hh
    format). Raises ``ValueError`` for another ``kind``."""
    if kind == "conversation":
        return tokenizer.apply_chat_template(to_messages(prompt) + [{"role": "assistant", "content": output}], tokenize=False)
    if kind == "plain":
        return f"{render_prompt(prompt, tokenizer, 'false')} {output}"
    raise ValueError(f"dialogue_text: kind must be conversation or plain, got {kind!r}")


def encode_batch(tokenizer, prompts: Sequence[str], outputs: Sequence[str], *, max_length: int, max_prompt_length: int,
                 chat_template: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids [B, T], attention_mask [B, T])`` of ``prompt + output`` pairs, each cut to
    ``max_length`` tokens keeping the prompt's last ``max_prompt_length`` (:func:`harness.prompting.encode_pair`).
    Raises ``ValueError`` when the lists differ in length."""
    if len(prompts) != len(outputs):
        raise ValueError(f"reward model: {len(prompts)} prompts vs {len(outputs)} outputs")
    enc = [encode_pair(p, o, tokenizer, max_length, max_prompt_length, chat_template).input_ids for p, o in zip(prompts, outputs)]
    return pad(enc, tokenizer.pad_token_id)


def encode_dialogues(tokenizer, prompts: Sequence[str], outputs: Sequence[str], *, max_length: int,
                     kind: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Right-padded ``(input_ids [B, T], attention_mask [B, T], n_cut)`` of :func:`dialogue_text` per pair.

    A chat-template text is tokenised without added special tokens (the template writes its own), a
    plain one with them, as ``pipeline("text-classification")`` does. A text over ``max_length`` tokens
    keeps its last ``max_length`` (the end of the response is what is read); ``n_cut`` counts them.
    Raises ``ValueError`` when the lists differ in length.
    """
    enc, n_cut = _dialogue_ids(tokenizer, prompts, outputs, max_length=max_length, kind=kind)
    ids, mask = pad(enc, tokenizer.pad_token_id)
    return ids, mask, n_cut


def _dialogue_ids(tokenizer, prompts: Sequence[str], outputs: Sequence[str], *, max_length: int,
                  kind: str) -> tuple[list[list[int]], int]:
    """Token ids of :func:`dialogue_text` per pair, each cut to its last ``max_length``, and how many were cut
    (:func:`encode_dialogues`, unpadded). Raises ``ValueError`` when the lists differ in length."""
    if len(prompts) != len(outputs):
        raise ValueError(f"reward model: {len(prompts)} prompts vs {len(outputs)} outputs")
    specials = kind == "plain"
    enc = [tokenizer(dialogue_text(tokenizer, p, o, kind), add_special_tokens=specials)["input_ids"] for p, o in zip(prompts, outputs)]
    return [e[-max_length:] for e in enc], sum(len(e) > max_length for e in enc)


def rewards_at_last_token(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """r(x, y) per row: the stock score, the scalar head read at :func:`harness.models.reward_index` under the
    model's ``config.pad_token_id``; ``[B, T]`` -> ``[B]`` in reward units (uncentred). Differentiable (the
    caller picks ``no_grad``); ``model`` may be wrapped by accelerate."""
    return read_rewards(model, token_scores(model, input_ids, attention_mask), input_ids, attention_mask)


def read_rewards(model, scores: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The rewards ``[B]`` among ``scores`` ``[B, T]`` (``model``'s scalar head at every position, however its hidden
    states were computed: :func:`harness.models.token_scores`, or a shared trunk): each row's
    :func:`harness.models.reward_index` under ``model``'s ``config.pad_token_id``."""
    from accelerate.utils import extract_model_from_parallel

    pad_id = extract_model_from_parallel(model).config.pad_token_id
    return scores[torch.arange(len(input_ids), device=input_ids.device), reward_index(input_ids, attention_mask, pad_id)]


@torch.no_grad()
def reward_scores(model, tokenizer, prompts: Sequence[str], outputs: Sequence[str], *, max_length: int = 512,
                  max_prompt_length: int = 256, batch_size: int = 8, chat_template: str = "auto",
                  counts: dict[str, int] | None = None, progress: str | None = None) -> list[float]:
    """r(x, y) for aligned prompts and outputs (reward units, uncentred), ``batch_size`` pairs per forward, on
    the model's device, rendered as :func:`rendering` says for this model (``chat_template``: the caller's
    setting, for a harness model that recorded none).

    ``harness`` rendering cuts long pairs as :func:`encode_batch` says and scores an empty output as a
    single space (a zero-length response has no token of its own to read); the other renderings keep the
    last ``max_length`` tokens of a longer text and log a warning with the count. ``counts``: when given, its
    ``"scored"`` and ``"truncated"`` entries are increased by the texts scored and cut here. Texts are batched
    in order of length (each batch pads to its longest: less padding than in the given order) and the scores
    returned in the given order; a text's score does not depend on its batch beyond float rounding (right
    padding, masked). Texts that share a token prefix (outputs of one prompt, a chat template's system turn) run it
    once (:func:`harness.judging.prefix_scores.prefix_shared_scores`; equal to whole-text scores to 1e-5).
    ``progress``: a progress-bar label (None: no bar). Raises ``ValueError`` on lists of unequal length or an
    element that is not a ``str`` (:func:`harness.judging.inputs.check_aligned`).
    """
    from harness.judging.inputs import check_aligned

    prompts, outputs = check_aligned("reward model", "reward_scores()", prompts=prompts, outputs=outputs)
    kind, template = rendering(model.config, tokenizer, chat_template)
    model.eval()
    dev = next(model.parameters()).device
    if kind == "harness":
        enc = [encode_pair(p, o or " ", tokenizer, max_length, max_prompt_length, template).input_ids for p, o in zip(prompts, outputs)]
        n_cut = 0
    else:
        enc, n_cut = _dialogue_ids(tokenizer, prompts, outputs, max_length=max_length, kind=kind)
    from tqdm.auto import tqdm

    from harness.judging.prefix_scores import prefix_shared_scores

    with tqdm(total=len(enc), desc=progress, leave=False, disable=progress is None) as bar:
        def whole(rows: list[int]) -> list[float]:
            (scores,) = _in_length_order([enc[i] for i in rows], batch_size, tokenizer.pad_token_id, dev, None, 1,
                                         lambda ids, attn: [rewards_at_last_token(model, ids, attn)])
            bar.update(len(rows))
            return scores

        out = prefix_shared_scores(model, enc, model.config.pad_token_id, batch_size, whole, progress=bar.update)
    if counts is not None:
        counts["scored"] = counts.get("scored", 0) + len(prompts)
        counts["truncated"] = counts.get("truncated", 0) + n_cut
    if n_cut:
        log.warning("reward model %s: %d of %d texts were longer than max_length=%d tokens and were cut to their last %d",
                    getattr(model.config, "_name_or_path", ""), n_cut, len(prompts), max_length, max_length)
    return out


def _in_length_order(enc: list[list[int]], batch_size: int, pad_id: int, dev, progress: str | None, n_models: int,
                     score_batch) -> list[list[float]]:
    """Texts ``enc`` (token ids) in batches of ``batch_size`` in order of length, right-padded with ``pad_id``;
    ``score_batch(ids [B, T], mask [B, T]) -> [scores [B] per model]`` for ``n_models`` models; returns per model
    the scores in the given order."""
    from tqdm.auto import tqdm

    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    out = [[0.0] * len(enc) for _ in range(n_models)]
    for start in tqdm(range(0, len(order), batch_size), desc=progress, leave=False, disable=progress is None):
        rows = order[start : start + batch_size]
        ids, attn = pad([enc[i] for i in rows], pad_id)
        for m, scores in enumerate(score_batch(ids.to(dev), attn.to(dev))):
            for i, r in zip(rows, scores.float().tolist()):
                out[m][i] = r
    return out


@torch.no_grad()
def reward_scores_sharing_trunk(models: Sequence, tokenizer, prompts: Sequence[str], outputs: Sequence[str], *,
                                n_shared: int, template: str, max_length: int = 512, max_prompt_length: int = 256,
                                batch_size: int = 8, progress: str | None = None) -> list[list[float]]:
    """:func:`reward_scores` of several harness-rendered reward models on the same pairs, per model in the given
    order, whose first ``n_shared`` decoder layers are the same (:func:`harness.judging.shared_trunk.shared_layers`):
    those run once per batch (:func:`harness.judging.shared_trunk.scores_sharing_trunk`), and each model's scores
    equal :func:`reward_scores` of it alone. ``tokenizer`` and ``template`` (``rendering(...)[1]``) render the
    pairs for all of them, as :func:`reward_scores` does for a harness model. Raises ``ValueError`` as
    :func:`reward_scores` does, or for ``n_shared`` outside the layers."""
    from harness.judging.inputs import check_aligned
    from harness.judging.shared_trunk import scores_sharing_trunk
    from harness.models import scalar_head

    prompts, outputs = check_aligned("reward model", "reward_scores_sharing_trunk()", prompts=prompts, outputs=outputs)
    for m in models:
        m.eval()
    dev = next(models[0].parameters()).device
    enc = [encode_pair(p, o or " ", tokenizer, max_length, max_prompt_length, template).input_ids for p, o in zip(prompts, outputs)]

    def score_batch(ids, attn):
        def read(model, hidden):  # the scalar head at the position transformers reads (rewards_at_last_token)
            index = reward_index(ids, attn, model.config.pad_token_id)
            return scalar_head(model)(hidden).squeeze(-1)[torch.arange(len(ids), device=ids.device), index]
        return scores_sharing_trunk(list(models), n_shared, ids, attn, read)

    return _in_length_order(enc, batch_size, tokenizer.pad_token_id, dev, progress, len(models), score_batch)


class RewardModelJudge:
    """A reward-model checkpoint as a judge: ``score(prompts, outputs) -> list[float]`` (reward units, uncentred).

    ``path``: a folder or hub id loadable as ``AutoModelForSequenceClassification`` with one label (the
    harness's reward models, TRL's, OpenRLHF's, RewardBench's) or a token-classification checkpoint of an
    earlier harness version. Pairs are rendered the way the model was trained (:func:`rendering`;
    ``chat_template`` only applies to a harness model that recorded no setting) and scored with the
    model's own tokenizer. ``name`` names it in results; ``fingerprint`` is the checkpoint's weights hash
    (:func:`harness.models.model_fingerprint`), what caches and ``run.json`` key on. The model is loaded
    on first use of ``model`` (:func:`harness.models.load_scalar_model`; a run whose rewards all come from the
    cache never loads it) and put on ``device`` in ``dtype`` (:func:`harness.devices.place`).
    """

    def __init__(self, path: str, *, name: str | None = None, chat_template: str = "auto", batch_size: int = 8,
                 max_length: int = 512, max_prompt_length: int = 256, progress: bool = False,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        from transformers import AutoConfig

        from harness.io import read_json
        from harness.models import loading, model_fingerprint

        self.path = str(path)
        self.name = name or Path(self.path).name
        self.fingerprint = model_fingerprint(self.path)
        self._tokenizer = None
        self._model, self._place = None, (device, dtype)
        self.chat_template, self.batch_size = chat_template, batch_size
        # a saved sequence classifier's rendering is in its config: a run whose rewards all come from the cache never
        # loads its weights; any other checkpoint gets its record when loaded (load_scalar_model), so it loads now
        config_file = Path(self.path) / "config.json"
        if config_file.is_file():  # the saved fields as they are: AutoConfig would import the model's classes (~1 s)
            config = SimpleNamespace(**{"architectures": None, **read_json(config_file)})
        else:
            with loading(self.path, "reward/value model"):
                config = AutoConfig.from_pretrained(self.path)
        archs = config.architectures or []
        saved = any(a.endswith("ForSequenceClassification") for a in archs) and not any(
            a.endswith("ForTokenClassification") for a in archs)
        config = config if saved else self.model.config
        # a recorded rendering needs no tokenizer: a run whose rewards are all cached loads none
        self.rendering = rendering(config, None if reward_record(config) is not None else self.tokenizer, chat_template)
        log.info("judge %s (%s): %s rendering%s", self.name, self.path, self.rendering[0],
                 f", chat_template={self.rendering[1]}" if self.rendering[1] else "")
        self.max_length, self.max_prompt_length, self.progress = max_length, max_prompt_length, progress
        self.counts: dict[str, int] = {"scored": 0, "truncated": 0}  # texts scored / cut to max_length, over the judge's life

    @property
    def tokenizer(self):
        """The judge's own tokenizer, loaded on first use (a run whose rewards all come from the cache, of a judge
        whose rendering its config records, never loads it: loading it imports the model's classes, ~1 s)."""
        if self._tokenizer is None:
            from harness.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.path)
        return self._tokenizer

    @property
    def model(self):
        """The scalar-head model on the judge's device and dtype, loaded on first use."""
        if self._model is None:
            from harness.devices import place
            from harness.models import load_scalar_model

            self._model = place(load_scalar_model(self.path), *self._place)
        return self._model

    def score(self, prompts: Sequence[str], outputs: Sequence[str]) -> list[float]:
        """r_judge(x, y) per output; a progress bar over chunks when ``progress``. Raises ``ValueError`` on lists of
        unequal length or an element that is not a ``str``, naming the judge and the index."""
        from harness.judging.inputs import check_aligned

        prompts, outputs = check_aligned(f"judge {self.name!r}", "score()", prompts=prompts, outputs=outputs)
        return reward_scores(self.model, self.tokenizer, prompts, outputs, max_length=self.max_length,
                             max_prompt_length=self.max_prompt_length, batch_size=self.batch_size,
                             chat_template=self.chat_template, counts=self.counts,
                             progress=f"judge {self.name}" if self.progress else None)
