"""Trained models that ship inside the package (the model zoo).

A named model is a checkpoint folder under ``gcnseg/zoo/NAME/`` (``model.safetensors``,
the ``model.json`` sidecar of a run, a ``README.md`` model card): wherever a command or
:func:`gcnseg.checkpoint.load_model` takes a run folder or checkpoint, it takes a name
from :data:`ZOO` too. The SHA-256 of the weights is written here, in the code, and
checked at every load: a file changed on disk is refused, whatever its sidecar says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import GcnsegError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class NamedModel:
    """One entry of the zoo: what it is, and the digest of its weights file."""

    name: str
    summary: str
    sha256: str  # of model.safetensors
    val_miou: float  # the headline: what ``gcnseg eval --model NAME --root DIR`` gives on val, in %

    @property
    def folder(self) -> Path:
        return HERE / self.name


ZOO: dict[str, NamedModel] = {
    m.name: m
    for m in [
        NamedModel(
            "camvid-gcn-lite0",
            "CamVid (11 classes, 360x480): GCN + BR on ImageNet EfficientNet-Lite0, fine-tuned on the train split",
            "642f4cebc055c198895597891fcbcbf9c972f90245852a5921ff66bf3fbd2458",
            65.76,
        ),
        NamedModel(
            "camvid-gcn-lite0-v2",
            "camvid-gcn-lite0's network by the camvid_lite0_v2 recipe (random scale 0.5-2.0), flip at test time",
            "c604824ca8ea0c290750234d12aaebcb241516ee81d2845d2dbcd91b85f2ba1a",
            65.72,
        ),
    ]
}


def named_checkpoint(name: str) -> Path:
    """The checkpoint folder of the named model ``name``, its weights' digest checked."""
    if name not in ZOO:
        raise GcnsegError(f"{name}: no such named model (known: {', '.join(ZOO)}; gcnseg models lists them)")
    from ..runtime import file_sha256

    m = ZOO[name]
    weights = m.folder / "model.safetensors"
    if not weights.is_file():
        raise GcnsegError(f"{weights}: missing from this install of gcnseg (reinstall it)")
    if file_sha256(weights) != m.sha256:
        raise GcnsegError(f"{weights}: corrupted (its SHA-256 is not the one gcnseg ships for {name})")
    return m.folder
