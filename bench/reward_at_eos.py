"""Where a reward model reads a truncated response: at its last sampled token (PPO before c27e2c3) or at an EOS
after it (how every completion an RM trains on ends, how the eval's judges read outputs, PPO since c27e2c3).

Takes the simulated labeler's samples of a ``make demo`` run (``<run>/label/comparisons.jsonl``: K SFT samples per
prompt, cut at ``label.max_new_tokens``) and scores the first ``--prompts`` prompts' samples with the run's proxy RM
(``checkpoints/rm``) and gold judge (``checkpoints/judge_helpful``) both ways, through
:func:`harness.prompting.encode_pair` (the RM trainer's layout; its EOS dropped for the "last token" reading).
Records per model the Spearman correlation of the two readings and the share of a prompt's sample pairs they order
alike (0.5 = unrelated); ``bench/results/reward_at_eos[_<tag>].json``.

Run: ``python -m bench.reward_at_eos --run <make demo run dir>``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
from scipy.stats import spearmanr

from bench import common as C


def main(argv: list[str] | None = None) -> None:
    from harness.judging.reward_model import rewards_at_last_token
    from harness.models import load_scalar_model, load_tokenizer
    from harness.prompting import encode_pair

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a `make demo` (pipeline=demo) run dir")
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    run = Path(args.run)
    rows = [json.loads(line) for line in (run / "label" / "comparisons.jsonl").read_text().splitlines()][: args.prompts]
    cfg = json.loads((run / "run.json").read_text())["config"]
    max_length, max_prompt_length = cfg["rm"]["max_length"], cfg["rm"]["max_prompt_length"]
    env, out = C.environment(), {}
    for name in ("rm", "judge_helpful"):
        model, tok = load_scalar_model(str(run / "checkpoints" / name)).eval(), load_tokenizer(str(run / "checkpoints" / name))
        at_eos, at_last = [], []
        for r in rows:
            for c in r["completions"]:
                ids = encode_pair(r["prompt"], c, tok, max_length, max_prompt_length, "auto").input_ids
                assert ids[-1] == tok.eos_token_id, "encode_pair ends a completion in EOS"
                for got, x in ((at_eos, ids), (at_last, ids[:-1])):
                    x = torch.tensor([x])
                    with torch.no_grad():
                        got.append(rewards_at_last_token(model, x, torch.ones_like(x)).item())
        alike, i = [], 0
        for r in rows:
            k = len(r["completions"])
            alike += [(at_eos[i + u] > at_eos[i + v]) == (at_last[i + u] > at_last[i + v]) for u, v in itertools.combinations(range(k), 2)]
            i += k
        out[name] = {"texts": len(at_eos), "spearman": round(float(spearmanr(at_eos, at_last)[0]), 3),
                     "pairs_ordered_alike": round(sum(alike) / len(alike), 3), "pairs": len(alike)}
        print(name, out[name], flush=True)
    name = "reward_at_eos" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "reward_at_eos", "config": {**vars(args), "max_length": max_length,
                                                               "max_prompt_length": max_prompt_length},
                          "runs": out, "environment": env}))


if __name__ == "__main__":
    main()
