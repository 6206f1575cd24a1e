"""``torch.hub`` entry points: ``torch.hub.load("<this repository>", "camvid_gcn_lite0")``
(``source="local"`` for a clone). The weights ship inside the repository: nothing is
downloaded but the code. The model segments images in one call:
``model.segment("street.png")`` (:mod:`gcnseg.api`)."""

dependencies = ["torch", "torchvision", "timm", "safetensors", "yaml"]


def camvid_gcn_lite0(pretrained: bool = True, num_classes: int | None = None):
    """GCN + BR on EfficientNet-Lite0 trained on CamVid (11 classes; gcnseg/zoo/camvid-gcn-lite0/README.md).
    ``pretrained=False``: the same network, untrained. ``num_classes`` other than 11: its
    trained encoder with a fresh head for that many classes, to fine-tune."""
    from gcnseg.api import from_pretrained, untrained

    if not pretrained:
        return untrained("camvid-gcn-lite0", num_classes=num_classes)
    return from_pretrained("camvid-gcn-lite0", num_classes=num_classes)
