"""harness.models.model_fingerprint: sha256 over a folder's weight files, hashed once per process and file version."""

import hashlib
import os

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
