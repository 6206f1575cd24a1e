"""``torch.hub`` entry points: ``torch.hub.load("<this repository>", "camvid_gcn_lite0")``
and ``"camvid_gcn_lite0_v2"`` (``source="local"`` for a clone). The weights ship inside
the repository: nothing is downloaded but the code. The model segments images in one
call: ``model.segment("street.png")`` (:mod:`gcnseg.api`)."""

dependencies = ["torch", "torchvision", "timm", "safetensors", "yaml"]


def camvid_gcn_lite0(pretrained: bool = True, num_classes: int | None = None):
    """GCN + BR on EfficientNet-Lite0 trained on CamVid (11 classes; gcnseg/zoo/camvid-gcn-lite0/README.md).
    ``pretrained=False``: the same network, untrained. ``num_classes`` other than 11: its
    trained encoder with a fresh head for that many classes, to fine-tune."""
    return _named("camvid-gcn-lite0", pretrained, num_classes)


def camvid_gcn_lite0_v2(pretrained: bool = True, num_classes: int | None = None):
    """camvid-gcn-lite0's network trained by the camvid_lite0_v2 recipe (random scale 0.5-2.0;
    flip at test time by default; gcnseg/zoo/camvid-gcn-lite0-v2/README.md). Arguments as
    :func:`camvid_gcn_lite0`'s."""
    return _named("camvid-gcn-lite0-v2", pretrained, num_classes)


def _named(name: str, pretrained: bool, num_classes: int | None):
    """The named model of gcnseg's zoo, or its network untrained (torch.hub lists no ``_`` names)."""
    from gcnseg.api import from_pretrained, untrained

    return (from_pretrained if pretrained else untrained)(name, num_classes=num_classes)
