"""Closed-domain hallucination: prompts, the offline support check, NLI / chat plugs, validation and rows."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from harness.data import DataError, instruction_prompt, load_demonstrations
from harness.evals.hallucination import (
    closed_domain_prompts,
    hallucination_items,
    hallucination_rows,
    task_category,
)
from harness.judging.hallucination import (
    ChatHallucinationJudge,
    JudgeParseError,
    NLIHallucinationChecker,
    SupportChecker,
    load_labelled,
    normalise_number,
    parse_verdict,
    split_halves,
    split_sentences,
    tune_threshold,
    validate_detector,
    validation_report,
)
from harness.records import Generation, Prompt

# ------------------------------------------------------------------------------------ prompts


def test_closed_domain_prompts_are_the_seed_tasks_with_input(data_dir):
    prompts = closed_domain_prompts(data_dir)
    assert len(prompts) == 125  # of 175 seed tasks, 125 have a non-empty first input
    demos = {d.id: d for d in load_demonstrations(data_dir)}
    for p in prompts:
        assert p.id in demos and demos[p.id].prompt == p.prompt  # same ids and prompt text as the SFT records
        assert p.metadata["input"] and p.prompt == instruction_prompt(p.metadata["instruction"], p.metadata["input"])
    by_id = {p.id: p for p in prompts}
    assert "seed_task_0" not in by_id  # breakfast_suggestion has no input
    assert by_id["seed_task_62"].metadata["category"] == "summarisation"
    assert by_id["seed_task_85"].metadata["category"] == "extraction"
    assert by_id["seed_task_8"].metadata["category"] == "other"
    assert by_id["seed_task_62"].metadata["task"] == "summarizing_news"


def test_exclude_ids_and_sampling(data_dir):
    prompts = closed_domain_prompts(data_dir, exclude_ids={"seed_task_0", "seed_task_62"})
    assert len(prompts) == 124 and "seed_task_62" not in {p.id for p in prompts}
    with pytest.raises(DataError, match="seed_task_9999"):
        closed_domain_prompts(data_dir, exclude_ids=["seed_task_9999"])
    a, b = closed_domain_prompts(data_dir, n=10, seed=3), closed_domain_prompts(data_dir, n=10, seed=3)
    assert [p.id for p in a] == [p.id for p in b] and len(a) == 10
    order = [p.id for p in closed_domain_prompts(data_dir)]
    assert [p.id for p in a] == [i for i in order if i in {p.id for p in a}]  # file order kept
    assert [p.id for p in closed_domain_prompts(data_dir, n=10, seed=4)] != [p.id for p in a]
    with pytest.raises(DataError, match="local data_dir"):
        closed_domain_prompts(None)
    strict = closed_domain_prompts(data_dir, categories=("summarisation", "extraction"))
    assert len(strict) == 39 and {p.metadata["category"] for p in strict} == {"summarisation", "extraction"}
    with pytest.raises(ValueError, match="unknown categories"):
        closed_domain_prompts(data_dir, categories=["summary"])


def test_bad_seed_file_names_file_line_and_field(tmp_path):
    (tmp_path / "self_instruct_seed").mkdir()
    good = {"id": "seed_task_0", "name": "x", "instruction": "Do it.", "instances": [{"input": "a", "output": "b"}]}
    bad = {"id": "seed_task_1", "name": "y", "instances": [{"input": "a", "output": "b"}]}
    (tmp_path / "self_instruct_seed" / "seed_tasks.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"seed_tasks.jsonl:2: missing field 'instruction'"):
        closed_domain_prompts(str(tmp_path))


@pytest.mark.parametrize("name,instruction,expected", [
    ("summarize_email", "Summarize this email into a single sentence:", "summarisation"),
    ("paper_title_generation", "Generate a title for the paper given a description.", "summarisation"),
    ("extract_country_names", "Extract all the country names in the paragraph.", "extraction"),
    ("oldest_person", "Select the oldest person from the list.", "extraction"),
    ("english_haiku_generation", "Generate a haiku using the following word:", "other"),
])
def test_task_category(name, instruction, expected):
    assert task_category(name, instruction) == expected


# ---------------------------------------------------------------------------- support checker


def test_normalise_number():
    assert [normalise_number(x) for x in ("1,000", "3.50", "5.0", "three", "Twenty", "12")] == ["1000", "3.5", "5", "3", "20", "12"]


def test_support_checker_numbers_entities_and_content_share():
    c = SupportChecker(content_threshold=0.5)
    src = "The company hired 3 engineers in 2020 and paid them 1,000 dollars each. Maria Lopez leads the team."
    ok = c.check("Summarize.", src, "In 2020 the company hired three engineers, paying each 1000 dollars; Maria Lopez leads them.")
    assert ok["hallucinated"] is False and ok["unsupported_numbers"] == [] and ok["unsupported_entities"] == []
    # content words: company hired engineers paying dollars leads; Porter stems "pay" (paying) != "paid"
    assert ok["unsupported_content_words"] == ["paying"] and ok["n_content_words"] == 6 and ok["n_numbers"] == 3
    assert ok["unsupported_content_share"] == pytest.approx(1 / 6)
    bad = c.check("Summarize.", src, "The company hired 4 engineers. Maria Lopez and John Smith lead the team.")
    assert bad["hallucinated"] is True
    assert bad["unsupported_numbers"] == ["4"] and bad["unsupported_entities"] == ["john", "smith"]


def test_support_checker_content_threshold_and_sentence_start():
    src = "The cat sat on the mat."
    # content words of the output: dog, sat, mat -> 1 of 3 unsupported; "Dog" at sentence start is no entity
    r = SupportChecker(content_threshold=0.5).check("", src, "Dog sat on the mat.")
    assert r["unsupported_entities"] == [] and r["unsupported_content_words"] == ["dog"]
    assert r["unsupported_content_share"] == pytest.approx(1 / 3) and r["hallucinated"] is False
    assert SupportChecker(content_threshold=0.3).check("", src, "Dog sat on the mat.")["hallucinated"] is True
    # the same word inside a sentence and capitalised is an entity, and flags on its own
    assert SupportChecker().check("", src, "The mat, said Rex.")["unsupported_entities"] == ["rex"]
    # words in the instruction count as support; the soft number word "one" never flags
    assert SupportChecker().check("Name one Pet.", src, "The pet is one cat.")["hallucinated"] is False
    empty = SupportChecker().check("", src, "")
    assert empty["hallucinated"] is False and empty["unsupported_content_share"] == 0.0
    with pytest.raises(ValueError, match="content_threshold"):
        SupportChecker(content_threshold=1.5)


# --------------------------------------------------------------------------------- validation


class FixedDetector:
    def __init__(self, preds):
        self.preds = dict(preds)

    def check(self, instruction, input_text, output):
        return {"hallucinated": self.preds[output]}


def test_validate_detector_hand_computed():
    truth = [True, True, True, False, False]
    preds = [True, True, False, True, False]  # tp 2, fn 1, fp 1, tn 1
    records = [{"id": str(i), "instruction": "", "input": "", "output": str(i), "hallucinated": t} for i, t in enumerate(truth)]
    got = validate_detector(FixedDetector({str(i): p for i, p in enumerate(preds)}), records)
    assert (got["tp"], got["fp"], got["fn"], got["tn"], got["n"]) == (2, 1, 1, 1, 5)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3) and got["accuracy"] == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="no records"):
        validate_detector(FixedDetector({}), [])


def test_labelled_set_is_balanced_and_real(data_dir):
    records = load_labelled()
    assert len(records) == 44 and sum(r["hallucinated"] for r in records) == 22
    tune, report = split_halves(records)
    assert len(tune) == len(report) == 22
    assert sum(r["hallucinated"] for r in tune) == sum(r["hallucinated"] for r in report) == 11
    seeds = {p.metadata["input"] for p in closed_domain_prompts(data_dir)}
    assert all(r["input"] in seeds for r in records)  # inputs are real seed-task inputs


def test_support_checker_validation_figures_in_docs():
    """The numbers docs/metrics_hal.md reports; a change to the checker must update the docs."""
    rep = validation_report()
    assert rep["threshold"] == 0.8 == SupportChecker().content_threshold
    assert (rep["report"]["tp"], rep["report"]["fp"], rep["report"]["fn"], rep["report"]["tn"]) == (10, 0, 1, 11)
    assert (rep["all"]["tp"], rep["all"]["fp"], rep["all"]["fn"], rep["all"]["tn"]) == (20, 1, 2, 21)
    assert tune_threshold(split_halves(load_labelled())[0], grid=[0.3, 0.8]) == 0.8


def test_load_labelled_errors(tmp_path):
    rec = {"id": "a", "instruction": "i", "input": "x", "output": "o", "hallucinated": False, "note": ""}
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=r"l.jsonl:2: field 'id' 'a' repeats line 1"):
        load_labelled(path)
    path.write_text(json.dumps({**rec, "hallucinated": "yes"}) + "\n")
    with pytest.raises(DataError, match=r"l.jsonl:1: field 'hallucinated' should be bool"):
        load_labelled(path)


# ------------------------------------------------------------------------------ items and rows


def test_items_and_rows_hand_computed():
    prompts = [Prompt("p1", "x", "s", {"instruction": "Summarize.", "input": "Ann met Bob in 2001.", "task": "t", "category": "summarisation"}),
               Prompt("p2", "x", "s", {"instruction": "Extract names.", "input": "Ann met Bob.", "task": "u", "category": "extraction"})]
    gens = [Generation("a", "p1", "x", "Ann met Bob in 2001."), Generation("a", "p2", "x", "Ann, Carl"),
            Generation("b", "p1", "x", "Ann met Bob in 1999."), Generation("b", "p2", "x", "Ann, Bob")]
    items = hallucination_items(gens, prompts, SupportChecker(), "det")
    assert [it["hallucinated"] for it in items] == [False, True, True, False]
    assert items[1]["detail"]["unsupported_entities"] == ["carl"] and items[0]["category"] == "summarisation"
    assert {it["judge"] for it in items} == {"det"}
    rows = hallucination_rows(items + [{"policy": "a", "hallucinated": True, "category": "extraction"}], "det")
    got = {(r.policy, r.get("category")): r for r in rows}
    assert list(got) == [("a", None), ("a", "extraction"), ("a", "summarisation"), ("b", None), ("b", "extraction"),
                         ("b", "summarisation")]
    assert got["a", None].value == pytest.approx(2 / 3) and got["a", None].n == 3
    assert got["a", "extraction"].value == 1.0 and got["b", None].value == 0.5
    single = got["b", "summarisation"]
    assert single.value == 1.0 and single.n == 1 and single.ci_low is None and single.ci_high is None
    for r in rows:
        assert r.eval == "hallucination" and r.metric == "hallucination_rate" and r.get("judge") == "det"
        assert r.ci_low is None or r.ci_low <= r.value <= r.ci_high
    assert [r.slice for r in hallucination_rows(items, "det", by_category=False)] == [{"judge": "det"}] * 2


def test_items_and_rows_refuse_bad_input():
    with pytest.raises(ValueError, match="'zz' is no closed-domain prompt"):
        hallucination_items([Generation("a", "zz", "x", "y")], [], SupportChecker(), "det")
    with pytest.raises(ValueError, match="no items"):
        hallucination_rows([], "det")
    with pytest.raises(ValueError, match="item 0 field 'hallucinated' should be bool"):
        hallucination_rows([{"policy": "a", "hallucinated": 1, "category": "c"}], "det")
    with pytest.raises(ValueError, match="item 0 has no field 'category'"):
        hallucination_rows([{"policy": "a", "hallucinated": True}], "det")


# ------------------------------------------------------------------------------------ plugs


def test_split_sentences():
    assert split_sentences("Ann met Bob. He left! Did he? 3 came.\n- item one\n2) item two") == [
        "Ann met Bob.", "He left!", "Did he?", "3 came.", "item one", "item two"]
    assert split_sentences("  \n") == []


def _tiny_nli(path, id2label):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "moon", "sun", "is", "hot", "."]))
    cfg = BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=16,
                     max_position_embeddings=64, num_labels=len(id2label), id2label=id2label,
                     label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(path)
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    return str(path)


def test_nli_checker_decision_logic(tmp_path):
    model_dir = _tiny_nli(tmp_path / "nli", {0: "CONTRADICTION", 1: "neutral", 2: "Entailment"})
    checker = NLIHallucinationChecker(model_dir, batch_size=2)
    assert checker.entail_index == 2
    # the random-weight forward runs end to end: one probability per sentence, in [0, 1]
    real = checker.check("", "the sun is hot .", "the sun is hot. The moon is hot.")
    assert len(real["entailment_probs"]) == 2 and all(0.0 <= p <= 1.0 for p in real["entailment_probs"])
    moon = checker.tokenizer.convert_tokens_to_ids("moon")

    def fake_forward(input_ids=None, **kw):  # deterministic: a hypothesis mentioning "moon" is contradicted
        has_moon = (input_ids == moon).any(dim=1)
        logits = torch.where(has_moon[:, None], torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0]))
        return SimpleNamespace(logits=logits)

    checker.model.forward = fake_forward
    ok = checker.check("Summarize.", "the sun is hot .", "the sun is hot. The sun is.")
    assert ok["hallucinated"] is False and ok["unsupported_sentences"] == []
    p = math.exp(3) / (math.exp(3) + 2)
    assert ok["entailment_probs"] == pytest.approx([p, p])
    bad = checker.check("Summarize.", "the sun is hot .", "the sun is hot. The moon is hot. The sun is.")
    assert bad["hallucinated"] is True and bad["unsupported_sentences"] == ["The moon is hot."]
    assert bad["entailment_probs"][1] == pytest.approx(1 / (math.exp(3) + 2))
    assert checker.check("", "the sun", "")["hallucinated"] is False


def test_nli_checker_needs_an_entailment_label(tmp_path):
    model_dir = _tiny_nli(tmp_path / "nli", {0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ValueError, match="no 'entailment' label.*LABEL_0"):
        NLIHallucinationChecker(model_dir)


class FakeChat:
    def __init__(self, reply):
        self.reply, self.seen = reply, []

    def complete(self, messages):
        self.seen.append(messages)
        return self.reply


def test_chat_judge_strict_parsing():
    client = FakeChat("The answer adds a year.\nVERDICT: HALLUCINATED")
    judge = ChatHallucinationJudge(client)
    got = judge.check("Summarize.", "Ann met Bob.", "Ann met Bob in 1999.")
    assert got["hallucinated"] is True and got["judge_reply"] == client.reply
    (msgs,) = client.seen
    assert [m["role"] for m in msgs] == ["system", "user"] and "Ann met Bob in 1999." in msgs[1]["content"]
    assert "Input:\nAnn met Bob." in msgs[1]["content"]
    assert ChatHallucinationJudge(FakeChat("fine\nverdict: supported.")).check("i", "x", "y")["hallucinated"] is False
    assert parse_verdict("VERDICT: Supported") is False
    for reply in ("Looks hallucinated to me.", "VERDICT: SUPPORTED\nVERDICT: HALLUCINATED", "VERDICT: maybe"):
        with pytest.raises(JudgeParseError, match="verdict lines"):
            ChatHallucinationJudge(FakeChat(reply)).check("i", "x", "y")
