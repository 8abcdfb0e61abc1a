"""Make this folder from a pipeline=smoke run: its results.jsonl and per-item records with every text
field (instructions, outputs, questions, answers, detector evidence) removed, so no dataset or model
text is committed. Used by tests/unit/test_regress_items.py to prove the item -> metric mapping.

    python tests/data/regress_smoke/strip.py /work/runs/smoke_fixture
"""

import json
import sys
from pathlib import Path

TEXT_FIELDS = {"instruction", "output", "baseline_output", "question", "answer", "detail"}
KEEP = {"toxicity_items.jsonl": {"instruction"}}  # there the instruction *type*: basic, respectful or biased
FILES = ["results.jsonl"] + [f"{e}_items.jsonl" for e in ("winrate", "likert", "truthfulqa", "toxicity", "hallucination",
                                                           "alignment_tax")]

if __name__ == "__main__":
    src, dst = Path(sys.argv[1]) / "results", Path(__file__).resolve().parent
    for name in FILES:
        lines = (src / name).read_text(encoding="utf-8").splitlines()
        drop = TEXT_FIELDS - KEEP.get(name, set())
        out = [json.dumps({k: v for k, v in json.loads(line).items() if k not in drop}) for line in lines if line.strip()]
        (dst / name).write_text("\n".join(out) + "\n", encoding="utf-8")
