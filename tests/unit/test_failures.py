"""error.json: written atomically with type, message and traceback; read back with validation."""

import pytest

from harness.failures import clear_failure, read_failure, record_failure


def _fail():
    raise ValueError("ppo.beta must be >= 0, got -1")


def test_record_failure_round_trip(tmp_path):
    try:
        _fail()
    except ValueError as e:
        path = record_failure(tmp_path, e, ["ppo.beta=-1"])
    info = read_failure(path)
    assert path == tmp_path / "error.json" and [p.name for p in tmp_path.iterdir()] == ["error.json"]  # no temp file left
    assert info["type"] == "ValueError" and info["message"] == "ppo.beta must be >= 0, got -1"
    assert "in _fail" in info["traceback"] and info["traceback"].rstrip().endswith("ValueError: ppo.beta must be >= 0, got -1")
    assert info["overrides"] == ["ppo.beta=-1"] and info["time"].endswith("+00:00")
    clear_failure(tmp_path)
    assert not path.exists()
    clear_failure(tmp_path)  # nothing to clear is fine


def test_non_builtin_exceptions_are_named_with_their_module(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    assert read_failure(record_failure(tmp_path, MissingMandatoryValue("x")))["type"] == "omegaconf.errors.MissingMandatoryValue"


@pytest.mark.parametrize("text,match", [("[1]", "expected a JSON object"), ('{"type": "E"}', "field 'message'"),
                                        ('{"type": "E", "message": "m", "traceback": 3}', "field 'traceback'"), ("{", "invalid JSON")])
def test_read_failure_rejects_malformed_files(tmp_path, text, match):
    (tmp_path / "error.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_failure(tmp_path / "error.json")
