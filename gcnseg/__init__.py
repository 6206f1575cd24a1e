"""gcnseg: Global Convolutional Network for semantic segmentation (Peng et al., CVPR 2017)."""

__version__ = "0.1.0"


def from_pretrained(name: str, device: str = "cpu"):  # -> GCNSeg (imported lazily: torch)
    """A trained network in eval mode: a named model that ships with gcnseg (``gcnseg
    models``; e.g. ``"camvid-gcn-lite0"``), a run folder or a checkpoint folder. Its
    sidecar (class names, palette, the config with its input normalisation ``data.mean``
    / ``data.std``, val metrics) is ``model.meta``. Inputs: float RGB in [0, 1],
    normalised with that mean and std, N x 3 x H x W; outputs: N x C x H x W scores."""
    from .checkpoint import load_model

    model, _, meta = load_model(name)
    vars(model)["meta"] = meta  # (a plain attribute: nn.Module.__setattr__ is typed for tensors and modules)
    return model.to(device)
