"""Make a named model from a finished run (a maintainer's step, not a user's):

    python -m gcnseg.zoo.pack RUN NAME --command "gcnseg train --config ..." [--fp16] [--flip]

writes ``gcnseg/zoo/NAME/model.safetensors`` (the run's best weights; its last ones for
``RUN/last.json``, which no selection on val picked; float16 with ``--fp16``) and its
``model.json`` sidecar (without the training machine's data and run paths), and prints
the SHA-256 to put into :data:`gcnseg.zoo.ZOO` and, with ``--fp16``, the share of
validation pixels where the float16 weights predict the class that the float32 ones do
(the model card reports it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import zoo
from ..checkpoint import MODEL_FILE, SIDECAR_VERSION, WEIGHTS_METADATA, load_model, resolve_checkpoint
from ..metrics.agreement import label_agreement
from ..runtime import atomic_path, atomic_write_text, file_sha256

# the sidecar entries a named model keeps (no training state, no digests of files it lacks)
KEEP = ("config", "num_classes", "classes", "palette", "ignore_index", "step", "epoch", "metrics")


def fp16_agreement(run: Path, fp16_state: dict[str, torch.Tensor]) -> float:
    """Share of validation pixels whose predicted class is the same with ``fp16_state``
    (cast back to float32) as with the run's float32 weights."""
    from ..data import build_dataset

    model, cfg, _ = load_model(run)
    half = load_model(run)[0]
    half.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in fp16_state.items()})
    ds = build_dataset(cfg.data, cfg.data.val_split, train=False)  # items normalised as the run was
    with torch.inference_mode():
        return label_agreement(
            (half(x).argmax(1), model(x).argmax(1)) for x in (ds[i][0][None] for i in range(len(ds)))
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run folder (its best checkpoint), RUN/last.json, or a checkpoint")
    p.add_argument("name")
    p.add_argument("--fp16", action="store_true", help="store the weights as float16")
    p.add_argument(
        "--flip", action="store_true", help="flip at test time by default (eval.flip=true in the named model's config)"
    )
    p.add_argument("--command", required=True, help="the command that trained the run (written into the sidecar)")
    args = p.parse_args(argv)
    ckpt = resolve_checkpoint(args.run, "best")
    _, _, meta = load_model(ckpt)
    from safetensors.torch import load_file

    state = load_file(str(ckpt / MODEL_FILE))
    if args.fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    out = zoo.HERE / args.name
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MODEL_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=WEIGHTS_METADATA)
    sha = file_sha256(out / MODEL_FILE)
    if args.flip:  # what eval, predict, serve and model.segment do unless told otherwise
        meta["config"]["eval"]["flip"] = True
    # no paths of the machine that trained it: the user gives the data's (--root)
    meta["config"]["data"]["root"] = None
    meta["config"]["out_dir"] = f"runs/{Path(meta['config']['out_dir']).name}"
    sidecar = {k: meta[k] for k in KEEP if k in meta} | {
        "sidecar": SIDECAR_VERSION,
        "sha256": {MODEL_FILE: sha},
        "trained_with": args.command,
    }
    if args.fp16:
        sidecar["fp16_pixel_agreement"] = fp16_agreement(ckpt, state)
    atomic_write_text(out / "model.json", json.dumps(sidecar, indent=2))
    print(json.dumps({"sha256": sha, "bytes": (out / MODEL_FILE).stat().st_size, **sidecar}, indent=2)[:2000])


if __name__ == "__main__":
    main()
