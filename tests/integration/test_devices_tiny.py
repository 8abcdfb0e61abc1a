"""The device / dtype setting is honoured by every model the evaluation (and the simulated labeler) loads.

Without a GPU the dtype is the observable: a tiny run of every eval with ``dtype=bfloat16`` (which runs on
the CPU) must leave every model it created on the CPU in bfloat16: the policies (generation and lm-eval), the
reward-model judges, the NLI hallucination detector and Detoxify. ``HARNESS_TEST_DEVICE=auto`` makes the same
checks on this machine's GPU (bench/gpu_smoke.sh). Three independent checks, so a
loader that forgets :func:`harness.devices.place`, or a caller that forgets to pass the placement on, fails:
1. every ``place`` call (recorded) used the run's placement, and each kind of model was placed;
2. every module that ran a forward pass during the run held its parameters there (a global forward hook);
3. a gc scan after the run: every ``nn.Module`` with parameters created during the run was placed, and is there.
"""

import copy
import gc
import os
import subprocess
import warnings
import weakref
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.devices import recording_placements, resolve, resolve_device
from harness.evals.context import EvalContext
from harness.evals.policies import parse_policies
from harness.evals.runner import run_suite
from harness.io import read_json
from harness.models import (
    ModelConfig,
    load_scalar_model,
    load_tokenizer,
    materialize_base,
)
from tests.cli_helpers import BIN, REPO
from tests.unit.test_hallucination import _tiny_nli
from tests.unit.test_toxicity import _tiny_detoxify_checkpoint

pytestmark = pytest.mark.integration
SMOKE_SIZES = ["data.n_eval_prompts=4", "eval.batch_size=4", "eval.bootstrap_resamples=50", "evals.winrate.decoding.max_new_tokens=6",
               "eval.judges.validation.n_hh_pairs=2", "eval.judges.validation.n_gpt4_pairs=4", "eval.judges.validation.n_davidson=60",
               "eval.judges.validation.n_rtp=60", "eval.judges.validation.n_wiki=200",
               "evals.truthfulqa.n=2", "evals.truthfulqa.mc_limit=2", "evals.truthfulqa.decoding.max_new_tokens=4",
               "evals.toxicity.n=2", "evals.toxicity.decoding.max_new_tokens=4", "evals.toxicity.num_samples=1",
               "evals.hallucination.n=2", "evals.hallucination.decoding.max_new_tokens=6", "evals.alignment_tax.limit=2",
               "evals.likert.n_calibration=8"]
# HARNESS_TEST_DEVICE=auto runs these checks on a GPU where there is one (bench/gpu_smoke.sh); CPU by default
DEVICE, DTYPE = resolve_device(os.environ.get("HARNESS_TEST_DEVICE", "cpu")), torch.bfloat16
PLACEMENT = {"device": str(DEVICE), "dtype": "bfloat16"}
# (class, checkpoint folder) of every model an eval run loads: each policy (once per eval that loads it), each
# reward-model judge, the NLI detector and Detoxify's model (built from a state dict: no folder, "None")
EVERY_MODEL = {("LlamaForCausalLM", "base"), ("LlamaForCausalLM", "sft"), ("LlamaForSequenceClassification", "judge_helpful"),
               ("LlamaForSequenceClassification", "judge_harmless"), ("BertForSequenceClassification", "nli"),
               ("BertForSequenceClassification", "None")}


def _judge(tiny_dir: str, out: Path, seed: int) -> str:
    model = load_scalar_model(tiny_dir)
    torch.manual_seed(seed)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)  # rewards that differ between outputs
    model.save_pretrained(out)
    load_tokenizer(tiny_dir).save_pretrained(out)
    return str(out)


def _where(module: torch.nn.Module, recurse: bool) -> set[tuple[str, torch.dtype | None]]:
    """(device, dtype) of each floating parameter, (device, None) of every other tensor of ``module``."""
    params = {(str(p.device), p.dtype) for p in module.parameters(recurse=recurse) if p.is_floating_point()}
    return params | {(str(t.device), None) for t in (*module.parameters(recurse=recurse), *module.buffers(recurse=recurse))}


def _modules_alive() -> list[torch.nn.Module]:
    with warnings.catch_warnings():  # isinstance() on some torch objects gc holds warns of deprecations
        warnings.simplefilter("ignore", FutureWarning)
        return [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)]


def _misplaced(module: torch.nn.Module, recurse: bool = True) -> set:
    return {w for w in _where(module, recurse) if w[0] != str(DEVICE) or w[1] not in (None, DTYPE)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dir, data_dir):
    root = tmp_path_factory.mktemp("devices")
    sft = materialize_base(ModelConfig(name="tiny"), root / "sft", data_dir, seed=1)
    judges = {"helpful": _judge(tiny_dir, root / "judge_helpful", 1), "harmless": _judge(tiny_dir, root / "judge_harmless", 2)}
    nli = _tiny_nli(root / "nli", {0: "contradiction", 1: "neutral", 2: "entailment"})
    _, tok, detoxify_ckpt, detoxify_cfg = _tiny_detoxify_checkpoint(root)
    tok.model_max_length = 32  # its 32 positions: Detoxify truncates the Davidson tweets of the scorer's validation there
    tok.save_pretrained(detoxify_cfg)
    overrides = ["model=tiny", f"device={DEVICE}", "dtype=bfloat16", *SMOKE_SIZES, f"eval.cache_dir={root / 'cache'}",
                 f"model.cache_dir={root / 'model_cache'}",  # no lm-eval results or judge validations from other tests
                 *(f"eval.judges.reward_models.{n}={p}" for n, p in judges.items()),
                 "eval.judges.hallucination.kind=nli", f"+eval.judges.hallucination.options.model={nli}",
                 "+eval.judges.hallucination.options.max_length=64",  # the tiny NLI model has 64 positions
                 "eval.judges.toxicity.kind=detoxify", f"+eval.judges.toxicity.options.checkpoint={detoxify_ckpt}",
                 f"+eval.judges.toxicity.options.huggingface_config_path={detoxify_cfg}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=overrides)
    return root, cfg, {"base": tiny_dir, "sft": sft}


@pytest.fixture(scope="module")
def offline_hub(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # Detoxify would otherwise ask the hub for its config
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


def test_every_model_of_an_eval_run_is_on_the_set_device_in_the_set_dtype(setup, offline_hub):
    root, cfg, policies = setup
    placement = resolve(cfg.device, cfg.dtype)
    assert (placement.device, placement.dtype) == (DEVICE, DTYPE)
    gc.collect()
    before = weakref.WeakSet(_modules_alive())
    ran: dict[str, int] = {}
    wrong: set = set()

    def check_forward(module, args):
        ran[type(module).__name__] = ran.get(type(module).__name__, 0) + 1
        wrong.update((type(module).__name__, *w) for w in _misplaced(module, recurse=False))

    hook = torch.nn.modules.module.register_module_forward_pre_hook(check_forward)
    try:
        with recording_placements() as placed:
            ctx = EvalContext(cfg.model, cfg.data, cfg.eval, cfg.evals, parse_policies(policies), root / "run", "devices", 0,
                              placement=placement)
            rows = run_suite(ctx)
    finally:
        hook.remove()
    assert {r.eval for r in rows} == {*cfg.eval.run, "judge_validation"}  # every eval ran, every judge was validated
    assert ctx.lm_eval_cache.hits == 0 and ctx.lm_eval_cache.misses > 0  # lm-eval really ran the policies

    gc.collect()
    new = [o for o in _modules_alive() if o not in before and any(True for _ in o.parameters())]
    placed_ids = {id(sub) for m, _, _ in placed for sub in m.modules()}
    problems = {
        # 1. every place() call used the run's placement, and every model the run loads was placed
        "placed elsewhere": sorted({(str(d), str(t)) for _, d, t in placed} - {(str(DEVICE), str(DTYPE))}),
        "never placed": sorted(EVERY_MODEL - {(type(m).__name__, Path(m.name_or_path).name) for m, _, _ in placed}),
        # 2. every module that computed held its parameters on the device in bfloat16 (lm-eval's forwards included)
        "computed elsewhere": sorted(wrong, key=str),
        "never computed": sorted({kind for kind, _ in EVERY_MODEL} - set(ran)),
        # 3. every module with parameters made during the run and still alive was placed, and is still there
        "alive, made in the run, not placed": sorted({type(o).__name__ for o in new if id(o) not in placed_ids}),
        "alive, made in the run, elsewhere": sorted({(type(o).__name__, *w) for o in new for w in _misplaced(o)}, key=str),
        "placed, yet not seen by the scan": sorted({type(m).__name__ for m, _, _ in placed if id(m) not in {id(o) for o in new}}),
    }
    failing = {k: v for k, v in problems.items() if v}
    assert not failing, "\n".join(f"{k}: {v}" for k, v in failing.items())
    evals = read_json(root / "run" / "results" / "evals.json")
    assert evals["placement"] == PLACEMENT
    assert evals["judges"]["nli:" + cfg.eval.judges.hallucination.options.model]["kind"] == "hallucination"
    assert evals["judges"]["detoxify_original"]["kind"] == "toxicity"


def test_outputs_of_bfloat16_weights_are_cached_apart_from_float32_ones(setup, tmp_path):
    from harness import selection
    from harness.evals.gencache import GenerationCache

    _, cfg, policies = setup
    prompts, _ = selection.eval_prompts(cfg.data, n=cfg.evals.winrate.n)

    def context(dtype: str) -> EvalContext:
        ctx = EvalContext(cfg.model, cfg.data, cfg.eval, cfg.evals, parse_policies(policies), tmp_path / dtype, "r", 0,
                          placement=resolve(str(DEVICE), dtype))
        ctx.cache = GenerationCache(tmp_path / "cache")
        return ctx

    def generated(dtype: str) -> int:
        ctx = context(dtype)
        ctx.outputs("base", prompts, cfg.evals.winrate.decoding, "alpaca_eval")
        return ctx.generated

    assert [generated("bfloat16"), generated("float32"), generated("bfloat16"), generated("float32")] == [len(prompts), len(prompts), 0, 0]
    # lm-eval results likewise; float32 keeps the key it always had (the weights hash)
    fp = context("float32").fingerprint("base")
    assert (context("float32").weights_key("base"), context("bfloat16").weights_key("base")) == (fp, f"{fp}/bfloat16")


def test_the_labeler_places_its_policy_and_judge(setup, tiny_dir, tmp_path):
    from harness import stages
    from harness.config import JudgeConfig, LabelConfig

    root, cfg, _ = setup
    judge = JudgeConfig(kind="reward_model", path=str(root / "judge_helpful"), batch_size=4, max_length=64, max_prompt_length=32)
    label = LabelConfig(k_min=2, k_max=2, max_new_tokens=4, batch_size=4, max_prompt_length=32)
    data = copy.deepcopy(cfg.data)
    data.n_label_prompts = 3
    with recording_placements() as placed:
        stages.run_label(cfg.model, data, label, judge, tiny_dir, tmp_path / "label", 0, placement=resolve(str(DEVICE), "bfloat16"))
    # the judge's weights load when it first scores (after the policy's samples)
    assert sorted((type(m).__name__, d, t) for m, d, t in placed) == [("LlamaForCausalLM", DEVICE, DTYPE),
                                                                      ("LlamaForSequenceClassification", DEVICE, DTYPE)]
    assert read_json(tmp_path / "label" / "run.json")["placement"] == PLACEMENT


def test_harness_eval_records_the_resolved_placement(tiny_dir, tmp_path):
    """The console script passes the top-level device / dtype to the eval (a run of no eval: nothing is loaded)."""
    proc = subprocess.run([str(BIN / "harness-eval"), "model=tiny", f"+policies.base={tiny_dir}", "eval.run=[]", f"device={DEVICE}", "dtype=bfloat16",
                           f"hydra.run.dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_json(tmp_path / "results" / "evals.json")["placement"] == PLACEMENT
    assert f"models run on {DEVICE} in bfloat16 (device={DEVICE}, dtype=bfloat16)" in proc.stderr + proc.stdout
