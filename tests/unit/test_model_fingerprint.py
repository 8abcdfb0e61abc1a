"""harness.models.model_fingerprint: sha256 over a folder's weight files, hashed once per process and file version."""

import hashlib
import os

import pytest

from harness.models import _weights_hash, model_fingerprint


def _by_hand(folder):
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_fingerprint_is_the_hash_of_names_and_bytes_and_follows_a_changed_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    (tmp_path / "extra.bin").write_bytes(b"more")
    (tmp_path / "config.json").write_text("{}")  # not a weight file
    first = model_fingerprint(str(tmp_path))
    assert first == _by_hand(tmp_path)
    hits = _weights_hash.cache_info().hits
    assert model_fingerprint(str(tmp_path)) == first and _weights_hash.cache_info().hits == hits + 1  # not hashed again
    (tmp_path / "model.safetensors").write_bytes(b"weights-2")
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))  # a new version even where the clock is coarse
    assert model_fingerprint(str(tmp_path)) == _by_hand(tmp_path) != first


def test_a_linked_weight_file_hashes_under_the_folders_name(tmp_path):
    """A hub snapshot links model.safetensors to a blob named by its hash: the folder's name is what is hashed."""
    blob = tmp_path / "blobs" / "abc123"
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "model.safetensors").symlink_to(blob)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model.safetensors").write_bytes(b"weights")
    assert model_fingerprint(str(snap)) == model_fingerprint(str(plain)) == _by_hand(plain)


def test_a_hub_id_without_a_folder_hashes_the_id():
    assert model_fingerprint("org/some-model") == hashlib.sha256(b"org/some-model").hexdigest()


def test_a_later_process_reads_the_stored_hash_and_a_rewritten_file_is_hashed_again(tmp_path, monkeypatch, caplog):
    """The hash is stored in <harness cache>/weights_hashes keyed by the files' size, mtime, ctime and inode: a new
    process (the in-process cache cleared) reads it back without opening the weights; bytes rewritten in place
    with the same size and mtime change the ctime, so they are hashed again; a record for another key or a corrupt
    one is a warning, hashed again and rewritten."""
    import builtins

    from harness.models import WEIGHTS_HASHES

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights-1")
    first = model_fingerprint(str(folder))
    records = list((tmp_path / "cache" / WEIGHTS_HASHES).glob("*.json"))
    assert first == _by_hand(folder) and len(records) == 1

    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    _weights_hash.cache_clear()  # a new process
    assert model_fingerprint(str(folder)) == first
    assert str(weights) not in opened  # read from the record
    monkeypatch.setattr(builtins, "open", real_open)

    mtime = weights.stat().st_mtime_ns
    weights.write_bytes(b"weights-2")  # same size
    os.utime(weights, ns=(mtime, mtime))  # and the same mtime: only the ctime tells
    _weights_hash.cache_clear()
    assert model_fingerprint(str(folder)) == _by_hand(folder) != first

    for r in (tmp_path / "cache" / WEIGHTS_HASHES).glob("*.json"):
        r.write_text('{"files": [], "sha256": "stale"}')  # a record that does not match its key
    _weights_hash.cache_clear()
    with caplog.at_level("WARNING", logger="harness.models"):
        assert model_fingerprint(str(folder)) == _by_hand(folder)
    assert "not for these files (another key)" in caplog.text
    for r in (tmp_path / "cache" / WEIGHTS_HASHES).glob("*.json"):
        r.write_text("{not json")
    _weights_hash.cache_clear()
    caplog.clear()
    with caplog.at_level("WARNING", logger="harness.models"):
        assert model_fingerprint(str(folder)) == _by_hand(folder)
    assert "invalid JSON" in caplog.text
    _weights_hash.cache_clear()
    assert model_fingerprint(str(folder)) == _by_hand(folder)  # the rewritten record is read back


def test_an_unresolved_cache_dir_interpolation_is_refused_before_any_folder_is_made(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from harness.model_config import ModelConfig
    from harness.models import smollm2_checkpoint

    monkeypatch.chdir(tmp_path)
    raw = ModelConfig().cache_dir  # a bare dataclass keeps the interpolation as text
    assert raw.startswith("${oc.env:HARNESS_CACHE_DIR")
    with pytest.raises(ValueError, match="unresolved config interpolation"):
        smollm2_checkpoint(raw)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    assert OmegaConf.structured(ModelConfig).cache_dir == str(tmp_path / "cache")  # what callers must read
