"""torchrun + DistributedDataParallel on CPU (gloo): two processes with batch 2
end where one process with batch 4 ends."""

import os
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

from gcnseg.checkpoint import resolve_checkpoint
from gcnseg.config import load_config
from gcnseg.train import train
from gcnseg.train.state import setup

COMMON = [
    "model.backbone=resnet18",
    "model.k=3",
    "model.br=true",
    "data.dataset=synthetic-shapes",
    "data.options={size: 32, num_classes: 3, length: 16, eval_length: 4, seed: 2}",
    "optim.name=sgd",
    "optim.lr=0.01",
    "optim.momentum=0.9",
    "train.iterations=3",
    "train.threads=1",
    "train.amp=fp32",
    "train.previews=0",
    "train.log_every=1",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_single_process(tmp_path):
    ddp_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        f"--master_port={free_port()}",
        "-m",
        "gcnseg",
        "train",
        "--no-progress",
        *COMMON,
        "train.batch_size=2",
        "train.freeze_bn=true",
        "train.device=cpu",
        f"out_dir={ddp_dir}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val mIoU" in proc.stdout

    single_dir = tmp_path / "single"
    train(
        load_config(None, COMMON + ["train.batch_size=4", "train.freeze_bn=true", f"out_dir={single_dir}"]),
        show_progress=False,
    )

    init = setup(load_config(None, COMMON + ["train.freeze_bn=true", f"out_dir={tmp_path / 'init'}"]))  # same seed
    init.lock.close()

    a = load_file(str(resolve_checkpoint(ddp_dir, "last") / "model.safetensors"))
    b = load_file(str(resolve_checkpoint(single_dir, "last") / "model.safetensors"))
    c = {k: v.detach().clone() for k, v in init.model.state_dict().items()}
    assert a.keys() == b.keys() == c.keys()
    keys = [k for k in c if c[k].is_floating_point()]
    update_single = torch.cat([(b[k] - c[k]).flatten() for k in keys])
    update_ddp = torch.cat([(a[k] - c[k]).flatten() for k in keys])
    # training moved the weights, and both runs moved them the same way
    # (up to float summation order, which differs between 1 and 2 processes)
    assert update_single.norm() > 0.1
    assert (update_ddp - update_single).norm() / update_single.norm() < 1e-3
