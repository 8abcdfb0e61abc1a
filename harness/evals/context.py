"""The context every eval runs in (:class:`EvalContext`): policies and their outputs (generated through
the cache, or read from an outputs file), lm-eval scores, and the judge panel, so no eval loads a
model or writes a generation itself.
"""

from __future__ import annotations

import gc
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.data import DataError, note_read, resolve_data_dir
from harness.devices import Placement, dtype_name, resolve
from harness.evals.gencache import GenerationCache
from harness.evals.lm_eval_cache import LMEvalCache
from harness.evals.policies import OutputRecord, OutputsFile, PolicySource
from harness.io import write_jsonl
from harness.records import Generation, Prompt

log = logging.getLogger(__name__)


def _plain(x: Any) -> Any:
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, DictConfig) else x


LOADED_POLICIES_BYTES = 3 * 2**30  # weights of the policies an eval run keeps loaded at once (four 135M models in fp32)


def _weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


class EvalContext:
    """Shared state of one evaluation run: what every eval's ``run(ctx, spec)`` may use.

    ``policies`` maps name -> :class:`PolicySource`; ``evals_cfg`` maps eval name -> its spec
    (``evals.<name>``); ``judges`` is the run's :class:`harness.judging.panel.JudgePanel` (from
    ``eval.judges``; ``resolve_default(name) -> checkpoint`` gives a judge configured as ``default``, e.g.
    :func:`harness.default_judges.resolver`; judge validations are cached under ``model_cfg.cache_dir``). Checkpoint policies are loaded lazily, one at a time, and only on a cache miss
    or for lm-eval, so a fully cached re-evaluation loads no policy weights for generation.
    ``placement`` (:class:`harness.devices.Placement`; default: ``device=auto``, ``dtype=auto``) is where
    every model of the run goes: the policies and every judge the panel builds.
    """

    def __init__(self, model_cfg, data_cfg, eval_cfg, evals_cfg, policies: Mapping[str, PolicySource],
                 run_dir: str | Path, run_id: str, seed: int, config_hash: str = "",
                 resolve_default: Callable[[str], str] | None = None, placement: Placement | None = None):
        from harness.judging.panel import JudgePanel

        self.placement = placement or resolve()
        self.model_cfg, self.data_cfg, self.eval_cfg, self.evals_cfg = model_cfg, data_cfg, eval_cfg, evals_cfg
        self.policies = dict(policies)
        self.run_dir = Path(run_dir)
        self.run_id, self.seed, self.config_hash = run_id, seed, config_hash
        root = resolve_data_dir(data_cfg.data_dir)
        self.data_dir = str(root) if root else None
        self.judges = JudgePanel(eval_cfg.judges, data_cfg=data_cfg, data_dir=self.data_dir, chat_template=model_cfg.chat_template,
                                 batch_size=int(eval_cfg.batch_size), seed=seed, run_dir=self.run_dir, placement=self.placement,
                                 resolve_default=resolve_default, cache_dir=model_cfg.cache_dir)
        self.cache = GenerationCache(eval_cfg.cache_dir or self.run_dir / "cache" / "generations")
        self.lm_eval_cache = LMEvalCache(Path(model_cfg.cache_dir) / "lm_eval" if model_cfg.cache_dir else None)
        self.generated = 0  # outputs generated (cache misses filled) in this run
        self._loaded: OrderedDict[str, tuple[Any, Any]] = OrderedDict()  # policy -> (model, tokenizer), least recent first
        self._tokenizers: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}
        self._files: dict[str, OutputsFile] = {}
        self._asked: dict[str, set[str | None]] = {}  # file policy -> the evals (and lm-eval tasks) its records were asked for
        self.current_eval: str | None = None  # the eval running now (set by the runner): whose records a file lookup uses
        self._lm_eval: dict[tuple, list[dict]] = {}
        self.lm_eval_aggregates: dict[tuple, dict[str, float]] = {}  # (policy, task, limit, shots) -> lm-eval aggregates
        self.warnings: list[str] = []  # loud warnings of this run: logged now, kept in results/evals.json and the report

    def warn(self, message: str) -> None:
        """Log ``message`` as a warning and keep it for ``results/evals.json`` (``warnings``) and the report."""
        log.warning(message)
        self.warnings.append(message)

    # ------------------------------------------------------------------ policies and their outputs

    @property
    def chat_template(self) -> str:
        return self.model_cfg.chat_template

    @property
    def resamples(self) -> int:
        return int(self.eval_cfg.bootstrap_resamples)

    def fingerprint(self, name: str) -> str:
        """Weights hash of a checkpoint policy (memoised)."""
        from harness.models import model_fingerprint

        if name not in self._fingerprints:
            self._fingerprints[name] = model_fingerprint(self.policies[name].path)
        return self._fingerprints[name]

    def weights_key(self, name: str) -> str:
        """What cached lm-eval results of checkpoint policy ``name`` are keyed by: its weights hash, with the dtype
        it runs in unless that is float32 (other weights, other numbers; float32 keeps the keys it always had)."""
        dtype = dtype_name(self.placement.dtype)
        return self.fingerprint(name) + ("" if dtype == "float32" else f"/{dtype}")

    def model(self, name: str):
        """(model, tokenizer) of checkpoint policy ``name`` on the run's placement. Loaded policies stay loaded while
        their weights fit in :data:`LOADED_POLICIES_BYTES` together (every eval visits every policy: small policies
        are not reloaded for each), the least recently used freed first; a policy larger than that is alone. A
        policy's tokenizer is loaded once per run."""
        from harness.models import load_policy, load_tokenizer

        src = self.policies[name]
        if src.is_file:
            raise ValueError(f"policy {name!r} is an outputs file ({src.path}); it has no model to run")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        expected = max((_weight_bytes(m) for m, _ in self._loaded.values()), default=0)  # policies of a run are alike
        self._free_until(LOADED_POLICIES_BYTES - expected)
        if name not in self._tokenizers:
            self._tokenizers[name] = load_tokenizer(src.path)
        self._loaded[name] = (load_policy(src.path, self.placement.device, self.placement.dtype), self._tokenizers[name])
        self._free_until(LOADED_POLICIES_BYTES, keep=name)
        return self._loaded[name]

    def _free_until(self, budget: int, keep: str | None = None) -> None:
        """Free least recently used policies (not ``keep``) until the loaded ones' weights take at most ``budget`` bytes."""
        freed = False
        while self._loaded and sum(_weight_bytes(m) for m, _ in self._loaded.values()) > max(budget, 0):
            victim = next((n for n in self._loaded if n != keep), None)
            if victim is None:
                break
            del self._loaded[victim]
            freed = True
        if freed:
            gc.collect()

    @property
    def outputs_missing(self) -> str:
        """``eval.outputs_missing``: ``error`` (default) or ``warn``, what a file that lacks items of an eval is."""
        return str(self.eval_cfg.get("outputs_missing") or "error")

    def outputs_file(self, name: str) -> OutputsFile:
        """The loaded outputs file of file policy ``name`` (read once; empty outputs are warned about once), noted
        among the data files of the eval that asks (every eval that uses it, not only the first)."""
        src = self.policies[name]
        if not src.is_file:
            raise ValueError(f"policy {name!r} is a checkpoint ({src.path}), not an outputs file")
        if name not in self._files:
            self._files[name] = file = OutputsFile.load(src)
            if file.n_empty:
                self.warn(f"policies.{name}: {file.n_empty} of the {len(file.records)} outputs in {src.path} are empty; "
                          "they are judged as empty answers")
        note_read(src.path)
        return self._files[name]

    def file_records(self, name: str, eval_name: str) -> list[OutputRecord]:
        """The records of file policy ``name`` that name ``eval_name`` (e.g. an lm-eval task), in file order."""
        self._asked.setdefault(name, set()).add(eval_name)
        return self.outputs_file(name).records_for(eval_name)

    def outputs(self, name: str, prompts: list[Prompt], decoding, tag: str, template: str = "{prompt}", *,
                eval_name: str | None = None) -> list[Generation] | None:
        """The policy's output for each of ``prompts``, in prompt order.

        A checkpoint answers ``template.format(prompt=p.prompt)``, through the generation cache.
        An outputs file is looked up by id or instruction (:meth:`OutputsFile.find`) under ``eval_name``
        (default: the running eval, :attr:`current_eval`): it returns ``None`` when it has no record for any
        of the prompts and none that names the eval (the file is not for this eval: the eval skips the
        policy and records why), and when it lacks some prompts :meth:`require_coverage` raises
        :class:`DataError` (or, with ``eval.outputs_missing=warn``, warns and the outputs of the covered
        prompts are returned). Every output is also written to ``generations/<name>/<tag>.jsonl``.
        ``Generation.prompt`` is always the original prompt (what judges see), not the templated one.
        """
        got = self._outputs(name, prompts, decoding, tag, template, 1, eval_name)
        if got is None:
            return None
        write_jsonl(self.run_dir / "generations" / name / f"{tag}.jsonl", got[0])
        return got[0]

    def sampled_outputs(self, name: str, prompts: list[Prompt], decoding, tag: str, template: str, k: int, *,
                        eval_name: str | None = None) -> list[list[Generation]] | None:
        """``k`` outputs per prompt, as ``[sample][prompt]`` (each inner list in prompt order): sample s of a
        checkpoint has its own seed; an outputs file needs one record per sample (field ``sample`` = 0 .. k-1),
        and a prompt with fewer than ``k`` is missing (:meth:`outputs` says what that does; with
        ``eval.outputs_missing=warn`` every inner list holds the same prompts, those with all k samples).
        Written to ``generations/<name>/<tag>_sample<s>.jsonl``."""
        got = self._outputs(name, prompts, decoding, tag, template, k, eval_name)
        for s, gens in enumerate(got or []):
            write_jsonl(self.run_dir / "generations" / name / f"{tag}_sample{s}.jsonl", gens)
        return got

    def _outputs(self, name: str, prompts: list[Prompt], decoding, tag: str, template: str, k: int,
                 eval_name: str | None) -> list[list[Generation]] | None:
        dec = {key: _plain(v) for key, v in dict(_plain(decoding)).items()}
        if not self.policies[name].is_file:
            return self._generate(name, prompts, dec, template, range(k))
        file, ev = self.outputs_file(name), eval_name or self.current_eval
        self._asked.setdefault(name, set()).add(ev)
        found = [file.lookup(prompts, dec, ev, s) for s in range(k)]
        lacking = {pid for _, missing in found for pid in missing}
        if not lacking:
            return [gens for gens, _ in found]
        near = file.near_misses([p for p in prompts if p.id in lacking])
        if near:
            pid, prompt, instruction = near[0]
            raise DataError(f"{file.source.path}: outputs file of policy {name!r}: {len(near)} of the {len(prompts)} prompts of "
                            f"'{tag}' match an instruction of the file only when case and whitespace are ignored (e.g. "
                            f"prompt id {pid}: {prompt[:60]!r} vs {instruction[:60]!r}); instructions must equal the "
                            "eval's prompts (whitespace at the ends aside): fix the file")
        if not any(gens for gens, _ in found) and ev not in file.evals:
            return None
        missing = [str(p.metadata.get("item_id", p.id)) for p in prompts if p.id in lacking]
        self.require_coverage(name, ev, tag, missing, len(prompts), k)
        return [[g for g in gens if g.prompt_id not in lacking] for gens, _ in found]

    def require_coverage(self, name: str, eval_name: str | None, what: str, missing: list[str], n_items: int,
                         k: int = 1) -> None:
        """An outputs file that lacks ``missing`` (ids) of the ``n_items`` items eval ``eval_name`` needs (``k``
        samples each): :class:`DataError` naming the file, the eval and the first 5 ids; with
        ``eval.outputs_missing=warn`` a warning with the counts instead (console and ``results/evals.json``,
        which the report shows), and the eval scores the items the file covers. Nothing when none are missing."""
        if not missing:
            return
        src = self.policies[name]
        msg = (f"{src.path}: outputs file of policy {name!r} lacks {len(missing)} of the {n_items} items of eval "
               f"'{eval_name}' ({what}{f', {k} samples each' if k > 1 else ''}; e.g. ids {missing[:5]})")
        if self.outputs_missing != "warn":
            raise DataError(f"{msg}; add them, or set eval.outputs_missing=warn to score the items it covers")
        self.warn(f"{msg}; eval.outputs_missing=warn: scored on the {n_items - len(missing)} items it covers")

    def unread_evals(self) -> list[str]:
        """One warning per outputs file with records whose ``eval`` no eval of this run read (a typo, or an eval
        left out of ``eval.run``): their outputs were not used."""
        out = []
        for name, file in self._files.items():
            unread = sorted(file.evals - self._asked.get(name, set()))
            if unread:
                n = sum(r.eval in unread for r in file.records)
                out.append(f"policies.{name}: {n} records of {file.source.path} are for {unread}, which no eval of this run "
                           "read; their outputs were not used")
        return out

    def _generate(self, name: str, prompts: list[Prompt], dec: dict, template: str, samples: range) -> list[list[Generation]]:
        """Outputs ``[sample][prompt]`` of checkpoint policy ``name``: from the generation cache where it has them,
        else generated, the samples that lack the same prompts together (:func:`harness.generation.generate_samples`:
        the prompts run once for all of them; sample s is seeded ``seed + 1000 s`` whichever samples run with it)."""
        from harness.generation import generate_samples
        from harness.prompting import prompts_cut

        texts = [template.format(prompt=p.prompt) for p in prompts]
        fp = self.fingerprint(name)
        limit = int(self.eval_cfg.max_prompt_length)
        base = {**dec, "chat_template": str(self.chat_template), "max_prompt_length": limit}
        if dtype_name(self.placement.dtype) != "float32":  # other weights, other outputs; float32 keeps the keys it always had
            base["dtype"] = dtype_name(self.placement.dtype)
        settings = {s: {**base, "seed": self.seed + 1000 * s} for s in samples}
        cached = {s: self.cache.get(fp, settings[s], texts, s) for s in samples}
        lacking: dict[tuple[int, ...], list[int]] = {}  # prompts to generate -> the samples that lack exactly those
        for s in samples:
            todo = tuple(i for i, c in enumerate(cached[s]) if c is None)
            if todo:
                lacking.setdefault(todo, []).append(s)
        for todo, group in lacking.items():
            model, tok = self.model(name)
            step = max(1, int(self.eval_cfg.batch_size)) * 4  # persist every few batches
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                new = generate_samples(model, tok, [Prompt(prompts[i].id, texts[i], prompts[i].source) for i in chunk], name,
                                       dec, seeds=[settings[s]["seed"] + start for s in group],
                                       batch_size=self.eval_cfg.batch_size, sample_rows=self.eval_cfg.sample_rows,
                                       max_prompt_length=limit, chat_template=self.chat_template, model_hash=fp)
                cut = prompts_cut([texts[i] for i in chunk], tok, limit, self.chat_template)
                for s, gens in zip(group, new):
                    self.cache.put(fp, settings[s], [texts[i] for i in chunk], [g.output for g in gens], s, cut=cut)
                    for i, g in zip(chunk, gens):
                        cached[s][i] = g.output
                self.generated += len(chunk) * len(group)
        n_cut = self.cache.n_cut(fp, settings[samples[0]], texts, samples[0]) if len(samples) else 0
        if n_cut:
            self.warn(f"policy {name!r}, eval {self.current_eval!r}: {n_cut} of {len(prompts)} prompts are longer than "
                      f"eval.max_prompt_length={limit} tokens and were cut to their last {limit} (the start of the "
                      "prompt, e.g. an instruction, is lost): raise eval.max_prompt_length if the model's context allows")
        return [[Generation(name, p.id, p.prompt, out, {**dec, "sample": s, **({"template": template} if template != "{prompt}" else {})}, fp)
                 for p, out in zip(prompts, cached[s])] for s in samples]

    def checkpoint_policies(self) -> list[str]:
        return [n for n, s in self.policies.items() if not s.is_file]

    # ----------------------------------------------------------------------------------- lm-eval

    def lm_eval(self, name: str, tasks: list[str], limit: int | None, num_fewshot: int | None = None) -> list[dict]:
        """Per-item lm-eval records of checkpoint policy ``name`` (memoised per task, limit and shots, and cached
        across runs by the policy's weights hash and dtype, :meth:`weights_key`: :mod:`harness.evals.lm_eval_cache`)."""
        from harness.evals.lm_eval_runner import run_lm_eval

        from harness.data import note_reads, recording_reads

        todo = [t for t in tasks if (name, t, limit, num_fewshot) not in self._lm_eval]
        fp, local = self.weights_key(name), self.data_dir is not None
        for t in list(todo):
            first = self._first_items(name, t, limit, num_fewshot)
            if first is not None:
                self._lm_eval[(name, t, limit, num_fewshot)], self.lm_eval_aggregates[(name, t, limit, num_fewshot)] = first
                todo.remove(t)
                continue
            hit = self.lm_eval_cache.get(fp, t, limit, num_fewshot, self.seed, local)
            if hit is not None:
                aggregate, items, reads = hit
                note_reads(reads)
                self._lm_eval[(name, t, limit, num_fewshot)] = items
                self.lm_eval_aggregates[(name, t, limit, num_fewshot)] = aggregate
                todo.remove(t)
        if todo:
            model, tok = self.model(name)
            with recording_reads(self.data_dir) as reads:
                aggregates, items = run_lm_eval(model, tok, todo, data_dir=self.data_dir, limit=limit, num_fewshot=num_fewshot,
                                                batch_size=self.eval_cfg.lm_eval_batch_size, seed=self.seed)
            for t in todo:
                self._lm_eval[(name, t, limit, num_fewshot)] = [it for it in items if it["task"] == t]
                self.lm_eval_aggregates[(name, t, limit, num_fewshot)] = aggregates[t]
                self.lm_eval_cache.put(fp, t, limit, num_fewshot, self.seed, local, aggregates[t],
                                       self._lm_eval[(name, t, limit, num_fewshot)], dict(reads))
        return [it for t in tasks for it in self._lm_eval[(name, t, limit, num_fewshot)]]

    def _first_items(self, name: str, task: str, limit: int | None, num_fewshot: int | None
                     ) -> tuple[list[dict], dict[str, float]] | None:
        """``(items, aggregates)`` of ``task`` at ``limit`` cut from a zero-shot run of this policy at a larger limit
        earlier in this run (the alignment tax's TruthfulQA MC2 on 40 items after TruthfulQA's on 100): lm-eval
        scores the first ``limit`` documents in file order, each independently of the others when zero-shot, so
        those items are the same numbers. Only when every aggregate of the larger run is the mean of its items
        (checked), so the cut's aggregates are the means of its items. ``None`` otherwise."""
        if limit is None or num_fewshot not in (None, 0):
            return None
        for (n, t, lim, shots), items in self._lm_eval.items():
            if n != name or t != task or shots not in (None, 0) or (lim is not None and lim <= limit):
                continue
            cut = [it for it in items if it["doc_id"] < limit]
            whole = self.lm_eval_aggregates[(n, t, lim, shots)]
            if len(cut) != limit or not all(
                    all(m in it for it in items) and math.isclose(sum(it[m] for it in items) / len(items), v, rel_tol=1e-12,
                                                                  abs_tol=1e-12) for m, v in whole.items()):
                continue
            return cut, {m: sum(it[m] for it in cut) / len(cut) for m in whole}
        return None
