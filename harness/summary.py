"""The console summary of a run's results: every :class:`~harness.records.ResultRow` as one line of a table.

``harness-eval`` and ``harness-pipeline`` print it when they finish. Columns (:data:`SUMMARY_COLUMNS`):

- ``policy``, ``eval``, ``metric``: what was measured, the metric's declared name;
- ``condition``: every slice key other than ``baseline`` and ``judge``, as ``key=value`` (instruction,
  prompt_style, task, shots, category, subset, ...), so two rows of one metric are told apart;
- ``value [95% CI]``: the value in the metric's own unit (a fraction for rates, not %) with its 95 %
  bootstrap interval, both to 3 decimals; the value alone where the row has no interval;
- ``n``: the number of items behind the value;
- ``baseline``: what the number compares the policy with (``slice["baseline"]``: a win rate's baseline
  policy such as ``text-davinci-003``, the reference policy of a paired delta); ``-`` for an absolute number;
- ``judge``: the judge or scorer that produced it (``slice["judge"]``: ``helpful``, ``profanity_check``, ...);
  ``-`` where no judge scored (lm-eval's log-likelihood accuracies, a reward model's own accuracy).

The table is markdown (pandas ``to_markdown``, tabulate's pipe format): aligned in a terminal and pasteable
into an issue or a CI summary as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from harness.records import ResultRow

SUMMARY_COLUMNS = ("policy", "eval", "metric", "condition", "value [95% CI]", "n", "baseline", "judge")
NONE = "-"
_OWN_COLUMNS = ("baseline", "judge")


def value_with_ci(value: float, ci_low: float | None, ci_high: float | None) -> str:
    """``0.4375, 0.25, 0.625 -> "0.438 [0.250, 0.625]"``; without both bounds only the value (3 decimals)."""
    if ci_low is None or ci_high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci_low:.3f}, {ci_high:.3f}]"


def _text(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


def summary_frame(rows: Iterable[ResultRow]) -> pd.DataFrame:
    """One row per result, in the given order, as strings under :data:`SUMMARY_COLUMNS` (see the module docstring)."""
    records = []
    for r in rows:
        condition = ", ".join(f"{k}={r.slice[k]}" for k in sorted(r.slice) if k not in _OWN_COLUMNS and r.slice[k] is not None)
        records.append((r.policy, r.eval, r.metric, condition or NONE, value_with_ci(r.value, r.ci_low, r.ci_high), str(r.n),
                        _text(r.get("baseline")), _text(r.get("judge"))))
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS), dtype=object)


def format_summary(rows: Iterable[ResultRow]) -> str:
    """The summary table of ``rows`` as markdown text (no trailing newline); ``"no results"`` for no rows.

    Cells are printed as :func:`summary_frame` made them (no re-parsing of numbers), so what the console shows is
    exactly ``value_with_ci`` of each row.
    """
    frame = summary_frame(rows)
    if frame.empty:
        return "no results"
    return frame.to_markdown(index=False, disable_numparse=True)
