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
