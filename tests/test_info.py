"""gcnseg info: parameters and FLOPs per part, counted by torch's FLOP counter."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gcnseg.commands import main
from gcnseg.info import model_info
from gcnseg.models import GCNSeg


@pytest.mark.parametrize("k", [7, 15])  # k=15: StripConv's tap groups are not what is counted
def test_parts_add_up_to_the_total(k):
    from gcnseg.models import plain_kernels

    model = GCNSeg(21, backbone="resnet18", k=k)
    info = model_info(model, (64, 96))
    parts = info["parts"]
    assert sum(p["params"] for p in parts.values()) == info["total"]["params"]
    assert sum(p["flops"] for p in parts.values()) == info["total"]["flops"]
    with FlopCounterMode(display=False) as fc, torch.no_grad(), plain_kernels(model):
        model.eval()(torch.zeros(1, 3, 64, 96))
    assert info["total"]["flops"] == fc.get_total_flops()
    # head FLOPs by hand: a GCN on res-5 (512 ch, 2x3) is 2 * (512*21*k + 21*21*k) MACs per pixel
    res5 = 2 * 2 * (512 * 21 * k + 21 * 21 * k) * 2 * 3
    res4 = 2 * 2 * (256 * 21 * k + 21 * 21 * k) * 4 * 6
    res3 = 2 * 2 * (128 * 21 * k + 21 * 21 * k) * 8 * 12
    res2 = 2 * 2 * (64 * 21 * k + 21 * 21 * k) * 16 * 24
    assert parts["heads"]["flops"] == res2 + res3 + res4 + res5


def test_cli_json(capsys):
    assert (
        main(
            [
                "info",
                "--backbone",
                "resnet18",
                "--head",
                "gcn",
                "--k",
                "15",
                "--num-classes",
                "21",
                "--size",
                "64",
                "--json",
                "-",
            ]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert set(info["parts"]) == {"backbone", "heads", "boundary_refine", "upsampling"}
    assert info["parts"]["boundary_refine"]["params"] == 9 * 2 * (21 * 21 * 9 + 21)
    assert info["parts"]["upsampling"]["params"] == 5 * 21 * 21 * 16
    assert info["model"]["k"] == 15


def test_cli_table_and_bad_k(capsys):
    assert main(["info", "--backbone", "resnet18", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "boundary_refine" in out and "total" in out
    assert main(["info", "--backbone", "resnet18", "--k", "4"]) == 2, "even k accepted"
    err = capsys.readouterr().err
    assert "odd" in err and err.count("\n") == 1
