"""Every scorer and judge interface refuses bad input with a one-line ValueError naming the field, index and value:
a str where a list of strings is due, None, NaN and other non-strings (harness/judging/inputs.py)."""

from __future__ import annotations

import math

import pytest

from harness.evals import text_tasks as TT
from harness.evals.truthfulqa import score_answers
from harness.judging import hallucination as H
from harness.judging import pairwise as PW
from harness.judging import reward_model as RM
from harness.judging import truthfulness as TR
from harness.judging.inputs import check_aligned, check_text, check_texts

SKY = {"id": "q1", "question": "What color is the sky?", "best_answer": "The sky is blue",
       "correct_answers": ["The sky is blue"], "incorrect_answers": ["The sky is green"], "category": "Test"}

#: bad element -> how the message shows it
BAD_ITEMS = {"none": (None, "NoneType None"), "nan": (math.nan, "float nan"), "int": (3, "int 3"), "bytes": (b"x", "bytes b'x'")}


class _Chat:
    def complete(self, messages):
        raise AssertionError("the input check must run before the chat model is asked")


# --------------------------------------------------------------------------------------- the checks themselves


def test_check_text_and_texts_messages():
    assert check_text("s", "", "answer") == "" and check_texts("s", ("a", "")) == ["a", ""]
    with pytest.raises(ValueError, match=r"^truthfulness scorer: answers\[3\] is NoneType None, not a str$"):
        check_texts("truthfulness scorer", ["a", "b", "c", None], "answers")
    with pytest.raises(ValueError, match=r"^s: score\(\) takes a list of texts, got a single str 'abc'; wrap it in a list$"):
        check_texts("s", "abc")
    with pytest.raises(ValueError, match=r"^s: score\(\) takes a list of texts, got dict \{'a': 1\}$"):
        check_texts("s", {"a": 1})
    with pytest.raises(ValueError, match=r"^j: judge\(\) needs lists of one length, got 2 prompts, 1 outputs$"):
        check_aligned("j", "judge()", prompts=["a", "b"], outputs=["c"])


# --------------------------------------------------------------------------------------- truthfulness scorers


def _truth_scorers():
    return [TR.ReferenceSimilarityScorer("rouge1"), TR.ReferenceSimilarityScorer("bleu"), TR.ChatTruthJudge(_Chat()),
            TR.AlwaysTruthfulScorer(), TR.RefusalOnlyScorer()]


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
def test_truthfulness_scorers_refuse_a_bad_answer(kind):
    bad, shown = BAD_ITEMS[kind]
    for scorer in _truth_scorers():
        with pytest.raises(ValueError, match=rf"{scorer.name}: answer to question q1 is {shown}, not a str"):
            scorer.score(SKY, bad)
    with pytest.raises(ValueError, match=rf"score_answers: policy 'p': answers\['q1'\] is {shown}, not a str"):
        score_answers([SKY], {"q1": bad}, TR.ReferenceSimilarityScorer("rouge1"), policy="p", prompt_style="qa")


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
def test_truthfulness_scorers_refuse_bad_references(kind):
    bad, shown = BAD_ITEMS[kind]
    for scorer in _truth_scorers()[:3]:
        with pytest.raises(ValueError, match=rf"question q1: correct_answers\[1\] is {shown}, not a str"):
            scorer.score({**SKY, "correct_answers": ["The sky is blue", bad]}, "Blue.")
    with pytest.raises(ValueError, match=rf"question q1: question is {shown}, not a str"):
        TR.validate_truthfulness_scorer([{**SKY, "question": bad}], TR.AlwaysTruthfulScorer())


def test_truthfulness_scorers_refuse_a_string_where_a_list_is_due():
    scorer = TR.ReferenceSimilarityScorer("rouge1")
    with pytest.raises(ValueError, match=r"question q1: a question takes a list of incorrect_answers, got a single str "
                                         r"'The sky is green'; wrap it in a list"):
        scorer.score({**SKY, "incorrect_answers": "The sky is green"}, "Blue.")
    with pytest.raises(ValueError, match=r"score_answers: policy 'p': answers must map question id -> answer, got str"):
        score_answers([SKY], "The sky is blue", scorer, policy="p", prompt_style="qa")
    with pytest.raises(ValueError, match=r"answer to question q1 is list \['Blue'\], not a str"):
        scorer.score(SKY, ["Blue"])


# --------------------------------------------------------------------------------------- hallucination detectors


def _detectors():
    nli = H.NLIHallucinationChecker.__new__(H.NLIHallucinationChecker)  # the check runs before the model is touched
    nli.name, nli.batch_size, nli.threshold = "nli:x", 8, 0.5
    return [H.SupportChecker(), H.ChatHallucinationJudge(_Chat()), nli]


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
@pytest.mark.parametrize("arg", ["instruction", "input_text", "output"])
def test_hallucination_detectors_refuse_bad_text(kind, arg):
    bad, shown = BAD_ITEMS[kind]
    texts = {"instruction": "Summarise.", "input_text": "Paris is in France.", "output": "Paris is in France.", arg: bad}
    for detector in _detectors():
        with pytest.raises(ValueError, match=rf"^{detector.name}: {arg} is {shown}, not a str$"):
            detector.check(**texts)


def test_nli_entailment_probs_refuse_a_string_and_bad_hypotheses():
    nli = _detectors()[2]
    with pytest.raises(ValueError, match=r"nli:x: entailment_probs\(\) takes a list of hypotheses, got a single str"):
        nli.entailment_probs("premise", "one hypothesis")
    with pytest.raises(ValueError, match=r"nli:x: hypotheses\[0\] is float nan, not a str"):
        nli.entailment_probs("premise", [math.nan])
    with pytest.raises(ValueError, match=r"nli:x: premise is NoneType None, not a str"):
        nli.entailment_probs(None, ["h"])


# --------------------------------------------------------------------------------------- text-task scorers


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
def test_text_task_scorers_refuse_bad_items(kind):
    bad, shown = BAD_ITEMS[kind]
    with pytest.raises(ValueError, match=rf"^SQuAD scorer: output is {shown}, not a str$"):
        TT.squad_scores(bad, ["Paris"])
    with pytest.raises(ValueError, match=rf"^SQuAD scorer: references\[1\] is {shown}, not a str$"):
        TT.squad_scores("Paris", ["Paris", bad])
    with pytest.raises(ValueError, match=rf"^DROP scorer: output is {shown}, not a str$"):
        TT.drop_scores(bad, [("Paris",)])
    with pytest.raises(ValueError, match=rf"^DROP scorer: golds\[0\]\[1\] is {shown}, not a str$"):
        TT.drop_scores("Paris", [("Paris", bad)])
    with pytest.raises(ValueError, match=rf"^BLEU scorer: outputs\[1\] is {shown}, not a str$"):
        TT.corpus_bleu(["a cat", bad], [["a cat"], ["a dog"]])
    with pytest.raises(ValueError, match=rf"^BLEU scorer: references\[0\]\[0\] is {shown}, not a str$"):
        TT.corpus_bleu(["a cat"], [[bad]])
    with pytest.raises(ValueError, match=rf"^squad scorer: item doc_id=7: output is {shown}, not a str$"):
        TT.score_items("squad", [TT.TextItem(7, bad, ["Paris"])])


def test_text_task_scorers_refuse_a_string_where_a_list_is_due():
    with pytest.raises(ValueError, match=r"SQuAD scorer: squad_scores\(\) takes a list of references, got a single str 'Paris'"):
        TT.squad_scores("Paris", "Paris")
    with pytest.raises(ValueError, match=r"DROP scorer: drop_scores\(\) takes a list of gold answers .* got str 'Paris'"):
        TT.drop_scores("Paris", "Paris")
    with pytest.raises(ValueError, match=r"DROP scorer: a gold answer takes a list of golds\[0\], got a single str 'Paris'"):
        TT.drop_scores("Paris", ["Paris"])
    with pytest.raises(ValueError, match=r"BLEU scorer: corpus_bleu\(\) takes a list of outputs, got a single str 'a cat'"):
        TT.corpus_bleu("a cat", [["a cat"]])
    with pytest.raises(ValueError, match=r"BLEU scorer: corpus_bleu\(\) takes a list of references\[0\], got a single str"):
        TT.corpus_bleu(["a cat"], ["a cat"])
    with pytest.raises(ValueError, match=r"squad scorer: item doc_id=3: references must be a list, got str 'Paris'"):
        TT.score_items("squad", [TT.TextItem(3, "Paris", "Paris")])
    assert TT.squad_scores("Paris", ["Paris"]) == {"exact": 100.0, "f1": 100.0}  # good input still scores


# --------------------------------------------------------------------------------------- pair judges, reward models


def _pair_judges():
    chat = PW.ChatPairwiseJudge(_Chat(), "chat:x", seed=0)
    return [("reward-model pair judge", PW.rm_pair_judge(lambda p, o: [0.0] * len(p))),
            ("longer-output judge", PW.longer_output_judge), ("random judge", PW.random_judge(0)), ("chat:x", chat)]


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
@pytest.mark.parametrize("position", [0, 1, 2])
def test_pair_judges_refuse_bad_elements(kind, position):
    bad, shown = BAD_ITEMS[kind]
    for name, judge in _pair_judges():
        args = [["p0", "p1"], ["a0", "a1"], ["b0", "b1"]]
        args[position][1] = bad
        fields = ["instructions", "outputs", "baseline_outputs"] if name == "chat:x" else ["prompts", "outputs_a", "outputs_b"]
        with pytest.raises(ValueError, match=rf"^{name}: {fields[position]}\[1\] is {shown}, not a str$"):
            judge(*args)


def test_pair_judges_refuse_strings_and_unequal_lengths():
    for name, judge in _pair_judges():
        with pytest.raises(ValueError, match=rf"^{name}: judge\(\) takes a list of \w+, got a single str 'abc'"):
            judge("abc", ["a"], ["b"])
        with pytest.raises(ValueError, match=rf"^{name}: judge\(\) needs lists of one length, got 2 \w+, 1 \w+, 2 \w+$"):
            judge(["p", "q"], ["a"], ["b", "c"])


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
def test_reward_model_scoring_refuses_bad_input(kind):
    bad, shown = BAD_ITEMS[kind]
    judge = RM.RewardModelJudge.__new__(RM.RewardModelJudge)  # the check runs before the model is touched
    judge.name = "helpful"
    with pytest.raises(ValueError, match=rf"^judge 'helpful': outputs\[1\] is {shown}, not a str$"):
        judge.score(["p", "q"], ["a", bad])
    with pytest.raises(ValueError, match=rf"^reward model: prompts\[0\] is {shown}, not a str$"):
        RM.reward_scores(None, None, [bad], ["a"])
    with pytest.raises(ValueError, match=r"^judge 'helpful': score\(\) takes a list of outputs, got a single str 'ab'"):
        judge.score(["p", "q"], "ab")
    with pytest.raises(ValueError, match=r"^reward model: reward_scores\(\) needs lists of one length, got 2 prompts, 1 outputs$"):
        RM.reward_scores(None, None, ["p", "q"], ["a"])
