"""Checkpoint folders and pointers survive a kill at any moment."""

import os

import pytest
from torch import nn

import gcnseg.checkpoint as ck


def test_saving_the_same_step_again_never_removes_the_pointed_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(2, 2)
    first = ck.save_checkpoint(tmp_path, model, {"step": 4}, pointers=("last", "best"))
    real_replace = os.replace

    def killed(src, dst):  # the process dies just before the new folder is renamed into place
        if str(src).startswith(str(tmp_path / "checkpoints")):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(tmp_path, model, {"step": 4, "again": True})
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert ck.resolve_checkpoint(tmp_path, "last") == first
    again = ck.save_checkpoint(tmp_path, model, {"step": 4, "again": True})
    assert ck.resolve_checkpoint(tmp_path, "last") == again != first
    assert ck.read_meta(again)["again"] and ck.resolve_checkpoint(tmp_path, "best") == first


@pytest.mark.parametrize("text", ['["step-0000001"]', '{"path": 3}', '"x"'])
def test_malformed_pointer_is_a_one_line_error_naming_it(tmp_path, text):
    (tmp_path / "last.json").write_text(text)
    with pytest.raises(ck.CheckpointError, match=r"last\.json: not a checkpoint pointer"):
        ck.resolve_checkpoint(tmp_path, "last")


def test_files_are_synced_before_they_are_renamed_and_get_the_umask_modes(tmp_path, monkeypatch):
    import gcnseg.runtime as rt

    synced: list[str] = []
    real = rt.fsync_path

    def record(path):
        synced.append(os.path.relpath(path, tmp_path))
        real(path)

    monkeypatch.setattr(ck, "fsync_path", record)
    monkeypatch.setattr(rt, "fsync_path", record)
    old = os.umask(0o027)
    try:
        final = ck.save_checkpoint(tmp_path, nn.Linear(2, 2), {"step": 1}, {"step": 1}, pointers=("last",))
    finally:
        os.umask(old)
    tmp = synced[0].split(os.sep)[1]  # the hidden folder the checkpoint was written in
    assert tmp.startswith(".tmp-")
    for name in ("model.safetensors", "train_state.pt", "model.json", ""):
        assert os.path.join("checkpoints", tmp, name).rstrip(os.sep) in synced, (name, synced)
    assert "checkpoints" in synced  # the rename itself
    assert "." in synced  # the folder of the pointer file, after its rename
    assert [p for p in synced if p.startswith(".last.json")]
    for f in final.iterdir():
        assert f.stat().st_mode & 0o777 == 0o640, f
    assert final.stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "last.json").stat().st_mode & 0o777 == 0o640


def test_a_digest_mismatch_names_the_file(tmp_path):
    final = ck.save_checkpoint(tmp_path, nn.Linear(2, 2), {"step": 1}, pointers=("last",))
    model = nn.Linear(2, 2)
    ck.load_weights(model, final)  # intact: loads
    data = bytearray((final / ck.MODEL_FILE).read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (final / ck.MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError, match=r"model\.safetensors: corrupted"):
        ck.load_weights(model, final)
