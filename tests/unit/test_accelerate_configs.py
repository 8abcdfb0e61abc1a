"""The accelerate configs documented for GPU users parse as accelerate reads them."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

DOCS = Path(__file__).resolve().parents[2] / "docs" / "accelerate"


@pytest.mark.parametrize("name,kind,key,value", [
    ("deepspeed_zero2", DistributedType.DEEPSPEED, "zero_stage", 2),
    ("deepspeed_zero3", DistributedType.DEEPSPEED, "zero_stage", 3),
    ("fsdp", DistributedType.FSDP, "fsdp_version", 2),
])
def test_documented_accelerate_config_parses(name, kind, key, value):
    cfg = load_config_from_file(str(DOCS / f"{name}.yaml"))
    assert cfg.distributed_type == kind and cfg.num_processes == 8 and cfg.mixed_precision == "bf16"
    section = cfg.deepspeed_config if kind == DistributedType.DEEPSPEED else cfg.fsdp_config
    assert section[key] == value
    if kind == DistributedType.DEEPSPEED:
        assert section["gradient_accumulation_steps"] == 1  # the harness accumulates itself
