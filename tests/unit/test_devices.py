"""The one device / dtype setting (harness/devices.py): how auto resolves on CUDA, MPS and CPU machines (the
machine's answers monkeypatched), explicit settings, errors that name the key, and place()."""

import logging

import pytest
import torch
from hydra import compose, initialize_config_dir

from harness import devices
from harness.cli import CONF_DIR
from harness.devices import (
    CPU,
    Placement,
    for_training,
    place,
    recording_placements,
    resolve,
    resolve_device,
    resolve_dtype,
)
from harness.errors import ConfigError
from harness.validation import validate_config


@pytest.fixture
def machine(monkeypatch):
    """Pretend this machine has ``cuda`` GPUs (bf16 native or not) and/or MPS."""

    def set_up(cuda: int = 0, bf16: bool = False, mps: bool = False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return set_up


@pytest.mark.parametrize("cuda,mps,expected", [
    (2, True, torch.device("cuda", 0)),  # CUDA first, even where MPS exists too
    (0, True, torch.device("mps", 0)),
    (0, False, torch.device("cpu")),
])
def test_auto_device_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == expected


def test_explicit_devices_resolve_with_their_index(machine):
    machine(cuda=2, mps=True)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device("mps") == torch.device("mps", 0)


def test_unknown_or_missing_devices_are_config_errors_naming_the_key(machine):
    machine(cuda=0, mps=False)
    with pytest.raises(ConfigError, match=r"^device=cuda: this machine has no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"^device=mps: Apple MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ConfigError, match=r"^device='gpu' is not a device: use one of auto, cpu, cuda, cuda:<index>, mps"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match=r"^device='cuda:x' is not a device"):
        resolve_device("cuda:x")
    machine(cuda=2)
    with pytest.raises(ConfigError, match=r"^eval\.device=cuda:2: this machine has 2 CUDA device\(s\) \(cuda:0\.\.cuda:1\)"):
        resolve_device("cuda:2", key="eval.device")


@pytest.mark.parametrize("cuda,bf16,device,expected", [
    (1, True, "cuda:0", torch.bfloat16),  # Ampere and newer
    (1, False, "cuda:0", torch.float32),  # e.g. a T4: bf16 would only be emulated
    (1, True, "cpu", torch.float32),  # device=cpu on a GPU machine
    (0, False, "cpu", torch.float32),
])
def test_auto_dtype_is_bfloat16_only_on_a_cuda_device_with_native_bf16(machine, cuda, bf16, device, expected):
    machine(cuda=cuda, bf16=bf16)
    assert resolve_dtype("auto", torch.device(device)) == expected


def test_auto_dtype_on_mps_is_float32(machine):
    machine(mps=True)
    assert resolve_dtype("auto", resolve_device("auto")) == torch.float32


def test_explicit_dtypes_and_their_errors(machine):
    machine(cuda=1, bf16=False)
    cpu = torch.device("cpu")
    assert [resolve_dtype(s, cpu) for s in ("float32", "bfloat16", "float16")] == [torch.float32, torch.bfloat16, torch.float16]
    assert resolve_dtype("float16", torch.device("cuda", 0)) == torch.float16
    with pytest.raises(ConfigError, match=r"^dtype=bfloat16: Tesla T4 has no native bfloat16; use dtype=float16 or dtype=float32"):
        resolve_dtype("bfloat16", torch.device("cuda", 0))
    with pytest.raises(ConfigError, match=r"^dtype='fp16' is not a dtype: use one of auto, float32, bfloat16, float16"):
        resolve_dtype("fp16", cpu)


def test_resolve_gives_one_placement_and_logs_it_once(machine, caplog, monkeypatch):
    machine(cuda=1, bf16=True)
    monkeypatch.setattr(devices, "_logged", set())
    with caplog.at_level(logging.INFO, logger="harness.devices"):
        first, again = resolve(), resolve()
    assert first == again == Placement(torch.device("cuda", 0), torch.bfloat16, ("auto", "auto"))
    assert first.describe() == {"device": "cuda:0", "dtype": "bfloat16"}
    assert [r.getMessage() for r in caplog.records] == ["models run on cuda:0 in bfloat16 (device=auto, dtype=auto)"]


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))


def test_place_casts_parameters_keeps_float32_buffers_and_tied_weights_and_is_recorded():
    model = _tiny_llama()
    weight = model.lm_head.weight.detach().clone()
    with recording_placements() as seen:
        assert place(model, "cpu", torch.bfloat16) is model
    assert seen == [(model, torch.device("cpu"), torch.bfloat16)]
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32  # RoPE frequencies stay float32, as from_pretrained leaves them
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still one tied tensor
    assert torch.equal(model.lm_head.weight.float(), weight.to(torch.bfloat16).float())
    place(model, "cpu", torch.float32)  # outside the block: not recorded
    assert len(seen) == 1 and model.lm_head.weight.dtype == torch.float32
    assert model(torch.tensor([[1, 2, 3]])).logits.dtype == torch.float32


def test_stage_configs_validate_device_and_dtype_naming_the_key():
    def problems(app: str, *overrides: str) -> str:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(app, overrides=["out_dir=/tmp/unused", *overrides])
        with pytest.raises(ConfigError) as e:
            validate_config(cfg)
        return str(e.value)

    for app in ("eval", "label", "pipeline", "sft", "rm", "ppo"):
        assert "device='tpu' is not a device" in problems(app, "device=tpu")
    assert "dtype='fp8' is not one of auto, float32, bfloat16, float16" in problems("eval", "dtype=fp8")
    assert "is not a dtype" not in problems("eval", "dtype=fp8")  # one message per problem
    for app in ("sft", "rm", "ppo"):  # the trainers keep float32 weights: dtype would do nothing there
        assert "dtype=bfloat16: the trainers keep float32 weights" in problems(app, "dtype=bfloat16")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        ok = compose("pipeline", overrides=["out_dir=/tmp/unused", "pipeline=smoke", "device=cpu", "dtype=bfloat16"])
    validate_config(ok)


def test_trainers_refuse_a_device_accelerate_does_not_run_on():
    from accelerate import PartialState

    ours = PartialState(cpu=not torch.cuda.is_available()).device  # this process's accelerate state (made here if new)
    for_training(ours)
    other = torch.device("cuda", 0) if ours.type == "cpu" else torch.device("cpu")
    with pytest.raises(ConfigError, match=rf"^device={other}: the trainers run where accelerate puts them, which in this "
                                          rf"process is {ours}; use device=auto"):
        for_training(other)


def test_loaders_default_to_float32_on_cpu(tiny_dir):
    from harness.models import load_policy

    assert CPU == Placement(torch.device("cpu"), torch.float32, ("cpu", "float32"))
    model = load_policy(tiny_dir)
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("cpu", torch.float32)}
    model = load_policy(tiny_dir, "cpu", torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32


def test_under_accelerate_launch_cuda_is_the_process_gpu(machine, monkeypatch):
    machine(cuda=2)
    monkeypatch.setenv("LOCAL_RANK", "1")  # accelerate gives process 1 the second GPU
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_judge_validations_of_bfloat16_judges_are_cached_apart(tmp_path):
    from harness.judging.panel import JudgePanel

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny"])
    runs = []

    def outcome(dtype: str) -> str:
        panel = JudgePanel(cfg.eval.judges, data_cfg=cfg.data, data_dir=None, chat_template="false", batch_size=2, seed=0,
                           run_dir=tmp_path, placement=resolve("cpu", dtype), cache_dir=tmp_path / "cache")
        return panel._cached("j", {"kind": "reward_model", "fingerprint": "abc"}, {}, 10, 0, lambda: runs.append(dtype) or ([], {}))[1]

    assert [outcome("float32"), outcome("bfloat16"), outcome("float32"), outcome("bfloat16")] == ["miss", "miss", "hit", "hit"]
    assert runs == ["float32", "bfloat16"]
