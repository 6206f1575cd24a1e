"""Backbone weights: torchvision's weights API, local files, and clear errors offline."""

import pickle
import urllib.error

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from gcnseg.models import GCNSeg, WeightsError, build_encoder, read_state_dict


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_is_loaded(tmp_path, suffix):
    ref = torchvision.models.resnet18()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    path = tmp_path / f"r18{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    features = build_encoder("resnet18", weights=path)
    torch.testing.assert_close(features.stem[0].weight, ref.conv1.weight)
    torch.testing.assert_close(features.res5[1].conv2.weight, ref.layer4[1].conv2.weight)
    model = GCNSeg(3, backbone="resnet18", weights=str(path))
    torch.testing.assert_close(model.backbone.res3[0].conv1.weight, ref.layer2[0].conv1.weight)


def test_nested_state_dict_and_classifier_keys_are_accepted(tmp_path):
    ref = torchvision.models.resnet18()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": ref.state_dict()}, path)
    features = build_encoder("resnet18", weights=path)
    torch.testing.assert_close(features.res2[0].conv1.weight, ref.layer1[0].conv1.weight)


def test_arbitrary_pickle_is_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    with pytest.raises(WeightsError, match=r"evil\.pth: not a readable state dict"):
        read_state_dict(path)


def test_wrong_architecture_file_is_named(tmp_path):
    path = tmp_path / "r34.safetensors"
    save_file(torchvision.models.resnet34().state_dict(), str(path))
    with pytest.raises(WeightsError, match=r"r34.safetensors: does not fit resnet18"):
        build_encoder("resnet18", weights=path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(WeightsError, match=r"nothere\.pth: weights file not found"):
        build_encoder("resnet18", weights=tmp_path / "nothere.pth")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match=r"bad\.safetensors: not a readable state dict"):
        build_encoder("resnet18", weights=bad)


def test_offline_download_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(self, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(WeightsError) as err:
        build_encoder("resnet50", weights="DEFAULT")
    msg = str(err.value)
    assert "\n" not in msg
    assert "ResNet50_Weights.IMAGENET1K_V2" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in msg


def test_weights_api_loads_from_the_hub_cache(monkeypatch, tmp_path):
    """With the file in torch's hub cache (as after a download), DEFAULT loads offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ref = torchvision.models.resnet18()
    w = torchvision.models.ResNet18_Weights.DEFAULT
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref.state_dict(), cache / w.url.rsplit("/", 1)[1])
    monkeypatch.setattr(
        torchvision.models.WeightsEnum,
        "get_state_dict",
        lambda self, *a, **k: torch.hub.load_state_dict_from_url(self.url, check_hash=False, weights_only=True),
    )
    features = build_encoder("resnet18", weights="IMAGENET1K_V1")
    torch.testing.assert_close(features.stem[0].weight, ref.conv1.weight)


def test_unknown_weights_name():
    with pytest.raises(WeightsError, match="unknown weights 'IMAGENET9K' for resnet50"):
        build_encoder("resnet50", weights="IMAGENET9K")
    with pytest.raises(WeightsError, match="no published weights for resnet50_gcn"):
        build_encoder("resnet50_gcn", weights="DEFAULT")


def test_feature_strides_and_channels():
    features = build_encoder("resnet50").eval()
    with torch.no_grad():
        feats = features(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 16, 24), (512, 8, 12), (1024, 4, 6), (2048, 2, 3)]
    assert features.channels == (256, 512, 1024, 2048)
