"""``torch.hub`` entry points: ``torch.hub.load("<this repository>", "camvid_gcn_lite0")``
(``source="local"`` for a clone). The weights ship inside the repository: nothing is
downloaded but the code."""

dependencies = ["torch", "torchvision", "timm", "safetensors", "yaml"]


def camvid_gcn_lite0(pretrained: bool = True):
    """GCN + BR on EfficientNet-Lite0 trained on CamVid (11 classes; gcnseg/zoo/camvid-gcn-lite0/README.md).
    ``pretrained=False``: the same network, untrained."""
    from gcnseg import from_pretrained

    model = from_pretrained("camvid-gcn-lite0")
    if not pretrained:
        from gcnseg.config import config_from_dict
        from gcnseg.models import build_model

        cfg = config_from_dict(model.meta["config"], saved=True)
        fresh = build_model(cfg.model, model.meta["num_classes"], pretrained=False).eval()
        vars(fresh)["meta"] = model.meta
        return fresh
    return model
