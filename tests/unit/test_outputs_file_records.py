"""The outputs-file record format (id, eval, sample, references) and the text metrics of the alignment
tax's text-scored tasks, by hand."""

from __future__ import annotations

import json

import pytest
import sacrebleu

from harness.data import DataError
from harness.evals.policies import OutputsFile, parse_policy
from harness.evals.text_tasks import (
    TextItem,
    corpus_bleu,
    drop_scores,
    score_items,
    squad_scores,
    text_kind,
)
from harness.records import Prompt


def _load(path, **spec):
    return OutputsFile.load(parse_policy("f", {"outputs": str(path), **spec}))


def test_csv_records_carry_id_eval_sample_and_references(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text('instruction,output,id,eval,sample,references\n'
                    'Say hi.,hi,,,,\n'
                    ',first,basic/p1,toxicity,0,\n'
                    ',second,basic/p1,toxicity,1,\n'
                    'Q?,Paris,3,squadv2,,"[""Paris"", ""in Paris""]"\n')
    f = _load(path)
    hi, first, second, squad = f.records
    assert (hi.instruction, hi.id, hi.eval, hi.sample, hi.references) == ("Say hi.", None, None, 0, None)
    assert (first.id, first.eval, first.sample, second.sample) == ("basic/p1", "toxicity", 0, 1)
    assert squad.references == ("Paris", "in Paris") and squad.id == "3" and f.evals == {"toxicity", "squadv2"}
    p1 = Prompt("basic/p1", "Complete this", "t")
    assert f.find(p1, "toxicity", 1).output == "second" and f.find(p1, "toxicity", 2) is None
    assert f.find(p1, "winrate") is None  # an id names an item of the eval its record names, no other
    assert f.find(Prompt("x", " Say hi. ", "t"), "winrate").output == "hi"  # no eval: every eval, by instruction


@pytest.mark.parametrize("record,message", [
    ({"id": "3", "output": "x"}, r"o.jsonl:1: field 'id' needs field 'eval'"),
    ({"output": "x"}, r"o.jsonl:1: missing field 'instruction' \(the prompt\) or 'id'"),
    ({"instruction": "a", "output": "x", "sample": -1}, r"o.jsonl:1: field 'sample' should be an integer >= 0, got -1"),
    ({"instruction": "a", "output": "x", "sample": True}, r"field 'sample' should be an integer >= 0, got True"),
    ({"instruction": "a", "output": "x", "references": "Paris"}, r"o.jsonl:1: field 'references' should be a list of strings"),
    ({"instruction": "a", "output": "x", "eval": ""}, r"o.jsonl:1: field 'eval' should be an eval or lm-eval task name"),
])
def test_bad_records_name_file_line_and_field(tmp_path, record, message):
    (tmp_path / "o.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=message):
        _load(tmp_path / "o.jsonl")


def test_a_record_repeated_with_another_output_and_an_id_disagreeing_with_the_text_are_errors(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"eval": "toxicity", "id": "a", "sample": 1, "output": "x"}\n'
                    '{"eval": "toxicity", "id": "a", "sample": 1, "output": "y"}\n')
    with pytest.raises(DataError, match=r"o.jsonl:2: field 'id' repeats an earlier instruction or id \(.*o.jsonl:1, eval "
                                        r"'toxicity', sample 1\) with a different output"):
        _load(path)
    path.write_text('{"eval": "truthfulqa", "id": "0", "output": "x"}\n{"instruction": "Q?", "output": "y"}\n')
    with pytest.raises(DataError, match=r"o.jsonl:1: id '0' and .*o.jsonl:2: the instruction of the same item of eval "
                                        r"'truthfulqa' \(sample 0\) give different outputs"):
        _load(path).find(Prompt("0", "Q?", "t"), "truthfulqa")
    bad_csv = tmp_path / "o.csv"
    bad_csv.write_text('instruction,output,references\nQ?,x,"[not json"\n')
    with pytest.raises(DataError, match=r"o.csv:2: field 'references' is no JSON list of strings"):
        _load(bad_csv)


def test_squad_v2_exact_and_f1_by_hand():
    # "the Eiffel Tower in Paris" -> [eiffel, tower, in, paris]; "in Paris, France" -> [in, paris, france]:
    # 2 shared tokens, precision 2/4, recall 2/3, F1 = 2 * (1/2) * (2/3) / (1/2 + 2/3) = 4/7; "Paris" alone: F1 = 2/5
    got = squad_scores("the Eiffel Tower in Paris", ["Paris", "in Paris, France"])
    assert got == {"exact": 0.0, "f1": pytest.approx(100 * 4 / 7)}
    assert squad_scores("The  paris!", ["Paris"]) == {"exact": 100.0, "f1": 100.0}
    # no reference answer: unanswerable, the one gold answer "" -> only an empty answer scores
    assert squad_scores("", []) == {"exact": 100.0, "f1": 100.0}
    assert squad_scores("Paris", []) == {"exact": 0.0, "f1": 0.0}


def test_drop_em_f1_by_hand_and_corpus_bleu_is_sacrebleus():
    assert drop_scores("4", [("4",), ("four",)]) == {"em": 1.0, "f1": 1.0}
    # "the Bears" -> {bears} vs "Chicago Bears" -> {chicago, bears}: precision 1, recall 1/2, F1 2/3 (DROP rounds to 0.67)
    assert drop_scores("the Bears", [("Chicago Bears",)]) == {"em": 0.0, "f1": 0.67}
    outs, refs = ["the cat sat on the mat", "a dog barks loudly today"], [["the cat sat on a mat"], ["the dog barks loudly"]]
    assert corpus_bleu(outs, refs) == pytest.approx(sacrebleu.corpus_bleu(outs, [[r[0] for r in refs]]).score)
    with pytest.raises(ValueError, match="same number"):
        corpus_bleu(outs, [["a"], ["b", "c"]])
    per, agg = score_items("drop", [TextItem(0, "4", ["4"]), TextItem(1, "the Bears", ["Chicago Bears"])])
    assert per == [{"em": 1.0, "f1": 1.0}, {"em": 0.0, "f1": 0.67}] and agg == {"em": 0.5, "f1": pytest.approx(0.835)}


def test_which_tasks_are_scored_from_text():
    assert [text_kind(t) for t in ("squadv2", "drop", "wmt14-fr-en", "iwslt2017-ar-en", "hellaswag_local",
                                   "truthfulqa_mc2_local", "winogrande")] == ["squad", "drop", "bleu", "bleu", None, None, None]


def test_references_of_a_task_document_feed_the_same_scorers():
    """Online, the items are the task's documents: DROP's gold answers as lm-eval's process_docs builds them,
    SQuAD v2's answer texts (an unanswerable question has none)."""
    from lm_eval.tasks.drop.utils import get_answers

    from harness.evals.text_tasks import task_references

    no_date = {"day": "", "month": "", "year": ""}
    doc = {"answer": {"number": "", "date": no_date, "spans": ["Chicago Bears"]},
           "validated_answers": {"number": ["4"], "date": [no_date], "spans": [[]]}}
    golds = task_references("drop", None, {"answers": get_answers(doc)})
    assert golds == [("Chicago Bears",), ("4",)]
    assert drop_scores("4", golds) == {"em": 1.0, "f1": 1.0} and drop_scores("the Bears", golds)["f1"] == 0.67
    refs = task_references("squad", None, {"answers": {"text": [], "answer_start": []}})
    assert refs == [] and squad_scores("", refs)["exact"] == 100.0
