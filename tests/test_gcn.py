"""GCN module, BR block and heads: exact parameter counts of Tables 2 and 4, shapes, errors."""

import pytest
import torch
from torch import nn

from gcnseg.models import BoundaryRefine, GlobalConv, build_head


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Table 2: "# of Params" of the head after res-5 (2048 channels in, 21 classes).
# The paper rounds to thousands (260,694 is printed 260K, 3,483,648 as 3484K):
# every printed value is within 1K of the exact count.


def matches_paper(exact: int, paper_k: int) -> bool:
    return abs(exact / 1000 - paper_k) < 1


@pytest.mark.parametrize(("k", "paper_k"), [(3, 260), (5, 434), (7, 608), (9, 782)])
def test_gcn_params_table2(k, paper_k):
    head = build_head("gcn", 2048, 21, k)
    closed_form = 2 * (2048 * 21 * k + 21 * 21 * k)
    assert n_params(head) == closed_form
    assert matches_paper(closed_form, paper_k)


@pytest.mark.parametrize(("k", "paper_k"), [(3, 387), (5, 1075), (7, 2107), (9, 3484)])
def test_convkxk_params_table2(k, paper_k):
    head = build_head("convkxk", 2048, 21, k)
    assert n_params(head) == 2048 * 21 * k * k
    assert matches_paper(n_params(head), paper_k)


# Table 4: k = 7 stacks of three 3x3 convolutions with m intermediate channels.
@pytest.mark.parametrize(("m", "paper_k"), [(2048, 75885), (1024, 28505), (210, 4307)])
def test_stack_params_table4(m, paper_k):
    head = build_head("stack", 2048, 21, 7, m=m)
    closed_form = 9 * (2048 * m + m * m + m * 21)
    assert n_params(head) == closed_form
    assert matches_paper(closed_form, paper_k)


def test_stack_default_width_is_input_channels():
    head = build_head("stack", 64, 5, 7)
    assert [c.out_channels for c in head] == [64, 64, 5]
    assert all(c.kernel_size == (3, 3) for c in head)
    assert len(build_head("stack", 64, 5, 3)) == 1
    assert len(build_head("stack", 64, 5, 15)) == 7


def test_conv1x1_params():
    assert n_params(build_head("conv1x1", 2048, 21)) == 2048 * 21


def test_gcn_structure_and_no_nonlinearity():
    g = GlobalConv(8, 4, 5)
    kernels = [c.kernel_size for c in g.left] + [c.kernel_size for c in g.right]
    assert kernels == [(5, 1), (1, 5), (1, 5), (5, 1)]
    assert all(c.bias is None for c in list(g.left) + list(g.right))
    # no nonlinearity: the module is linear in its input
    x, y = torch.randn(2, 8, 9, 11), torch.randn(2, 8, 9, 11)
    torch.testing.assert_close(g(2 * x - 3 * y), 2 * g(x) - 3 * g(y), atol=1e-4, rtol=1e-4)


def test_gcn_equals_dense_kxk_kernel():
    """GCN is a sum of two rank-1 separable kxk kernels (Section 3.1)."""
    g = GlobalConv(1, 1, 5)
    x = torch.randn(1, 1, 12, 12)
    a1, a2 = g.left[0].weight[0, 0, :, 0], g.left[1].weight[0, 0, 0, :]
    b1, b2 = g.right[0].weight[0, 0, 0, :], g.right[1].weight[0, 0, :, 0]
    dense = torch.outer(a1, a2) + torch.outer(b2, b1)
    ref = torch.nn.functional.conv2d(x, dense[None, None], padding=2)
    torch.testing.assert_close(g(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gcn", "conv1x1", "convkxk", "stack"])
@pytest.mark.parametrize("hw", [(16, 16), (7, 13), (1, 1)])
def test_heads_preserve_size(kind, hw):
    head = build_head(kind, 16, 3, k=7)
    assert head(torch.randn(2, 16, *hw)).shape == (2, 3, *hw)


@pytest.mark.parametrize("k", [0, 2, 4, -3, 1.5, True])
def test_even_or_bad_k_rejected(k):
    with pytest.raises(ValueError, match="odd"):
        GlobalConv(4, 2, k)
    with pytest.raises(ValueError, match="odd"):
        build_head("convkxk", 4, 2, k)


def test_unknown_head_kind():
    with pytest.raises(ValueError, match="unknown head kind 'fcn'"):
        build_head("fcn", 4, 2)


def test_boundary_refine_is_residual():
    br = BoundaryRefine(3)
    nn.init.zeros_(br.conv2.weight)
    nn.init.zeros_(br.conv2.bias)
    x = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(br(x), x)  # R(S) = 0 -> S~ = S
    br = BoundaryRefine(3)
    assert br(x).shape == x.shape
    manual = x + br.conv2(torch.relu(br.conv1(x)))
    torch.testing.assert_close(br(x), manual)
    assert [br.conv1.kernel_size, br.conv2.kernel_size] == [(3, 3), (3, 3)]


@pytest.fixture
def conv_kernels(monkeypatch):
    """The kernel sizes F.conv2d is called with, in order."""
    import torch.nn.functional as F

    kernels = []
    conv2d = F.conv2d

    def recording_conv2d(x, weight, *args, **kwargs):
        kernels.append(tuple(weight.shape[-2:]))
        return conv2d(x, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", recording_conv2d)
    return kernels


@pytest.mark.parametrize("hw", [(17, 19), (2, 2)])  # 2x2: PyTorch's fallback convolution
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_strip_conv_training_path_equals_plain_convolution(memory_format, hw, conv_kernels):
    """A 1 x 15 StripConv's transposed k x 1 path (taken while its weight learns on the
    CPU) gives the plain 1 x k convolution's output and gradients, bias included."""
    from gcnseg.models.kernels import StripConv

    torch.manual_seed(0)
    fast = StripConv(6, 4, 15, vertical=False, bias=True).to(memory_format=memory_format)
    plain = nn.Conv2d(6, 4, (1, 15), padding=(0, 7), bias=True)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 6, *hw).contiguous(memory_format=memory_format)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = fast(xa), plain(xb)
    assert conv_kernels == [(15, 1), (1, 15)]  # StripConv ran as k x 1 on the transposed map
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    assert ya.shape == yb.shape == (2, 4, *hw)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-4, atol=1e-4)  # sums of 646 products
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)
    assert fast.weight.grad.stride() == fast.weight.stride()  # as DDP's gradient buckets expect
    assert [k for k, _ in fast.state_dict().items()] == ["weight", "bias"]  # checkpoints unchanged
    assert fast.weight.shape == (4, 6, 1, 15)


@pytest.mark.parametrize("vertical", [True, False])
@pytest.mark.parametrize("k", [15, 21])
@pytest.mark.parametrize("hw", [(17, 19), (2, 3), (40, 9)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_strip_conv_inference_tap_groups_equal_plain_convolution(vertical, k, hw, memory_format, conv_kernels):
    """In inference a StripConv with k >= 15, k % 3 == 0 is one 3-tap convolution with
    k/3 times the outputs and shifted sums: the plain convolution's result, bias included."""
    from gcnseg.models.kernels import StripConv

    torch.manual_seed(0)
    fast = StripConv(6, 4, k, vertical=vertical, bias=True).to(memory_format=memory_format)
    kernel, padding = ((k, 1), (k // 2, 0)) if vertical else ((1, k), (0, k // 2))
    plain = nn.Conv2d(6, 4, kernel, padding=padding, bias=True)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 6, *hw).contiguous(memory_format=memory_format)
    with torch.no_grad():
        got = fast(x)
        assert conv_kernels == [(3, 1) if vertical else (1, 3)]
        want = plain(x)
    assert got.shape == want.shape == (2, 4, *hw)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_strip_conv_plain_path_elsewhere(monkeypatch, conv_kernels):
    """Unbatched input, ONNX export, a padding mode other than zeros, k below 15 or not
    a multiple of 3, and a k x 1 strip in training take nn.Conv2d's own call."""
    from gcnseg.models.kernels import StripConv

    conv = StripConv(3, 2, 15, vertical=False)
    with torch.no_grad():
        assert conv(torch.randn(3, 9, 20)).shape == (2, 9, 20)  # unbatched
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        conv(torch.randn(1, 3, 9, 20))
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: False)
        StripConv(3, 2, 13, vertical=False)(torch.randn(1, 3, 9, 20))
        StripConv(3, 2, 17, vertical=True)(torch.randn(1, 3, 9, 20))
    StripConv(3, 2, 15, vertical=True)(torch.randn(1, 3, 9, 20))  # training, k x 1
    assert conv_kernels == [(1, 15), (1, 15), (1, 13), (17, 1), (15, 1)]
    x = torch.randn(1, 3, 5, 20)
    circular = StripConv(3, 2, 15, vertical=False)
    circular.padding_mode = "circular"
    ref = nn.Conv2d(3, 2, (1, 15), padding=(0, 7), padding_mode="circular", bias=False)
    ref.load_state_dict(circular.state_dict())
    torch.testing.assert_close(circular(x), ref(x))
    with torch.no_grad():
        torch.testing.assert_close(circular(x), ref(x))


def test_strip_conv_fast_paths_only_for_its_own_geometry(conv_kernels):
    """Stride, dilation or padding changed after construction: the plain call, so the
    result is nn.Conv2d's; bf16 in gives bf16 out, as from the plain call."""
    from gcnseg.models.kernels import StripConv

    torch.manual_seed(0)
    x = torch.randn(1, 3, 20, 24)
    for change in ({"stride": (2, 2)}, {"dilation": (2, 1), "padding": (14, 0)}, {"padding": (9, 0)}):
        fast = StripConv(3, 2, 15, vertical=True)
        ref = nn.Conv2d(3, 2, (15, 1), bias=False, **{"padding": (7, 0), **change})
        ref.load_state_dict(fast.state_dict())
        for name, value in change.items():
            setattr(fast, name, value)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), ref(x))
    assert (3, 1) not in conv_kernels  # never the tap groups
    half = StripConv(3, 2, 15, vertical=False).to(torch.bfloat16)
    with torch.no_grad():
        out = half(x.to(torch.bfloat16))
        ref = nn.functional.conv2d(x.to(torch.bfloat16), half.weight, padding=(0, 7))
    assert conv_kernels[-2:] == [(1, 3), (1, 15)]  # tap groups, then the reference
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


def test_fast_kernels_switch_read_once_and_plain_kernels(conv_kernels):
    """One switch (GCNSEG_FAST_KERNELS, read at import) sets each strip's ``fast``;
    plain_kernels turns the fast paths off on one model and restores them."""
    import subprocess
    import sys

    from gcnseg.models import GCNSeg, plain_kernels
    from gcnseg.models.kernels import StripConv, use_fast_kernels

    assert StripConv(3, 2, 15, vertical=True).fast is use_fast_kernels()
    code = "from gcnseg.models.kernels import StripConv as S; print(S(3, 2, 15, vertical=True).fast)"
    env = {**__import__("os").environ, "GCNSEG_FAST_KERNELS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    model = GCNSeg(3, "resnet18", k=15, br=False).eval()
    strips = [m for m in model.modules() if isinstance(m, StripConv)]
    assert len(strips) == 8
    for m in strips:  # as built where GCNSEG_FAST_KERNELS is unset
        m.fast = True
    with torch.no_grad(), plain_kernels(model):
        assert not any(m.fast for m in strips)
        conv_kernels.clear()
        model(torch.randn(1, 3, 64, 64))
        assert (3, 1) not in conv_kernels and (1, 3) not in conv_kernels  # no tap groups
    assert all(m.fast for m in strips)
    with torch.no_grad():
        conv_kernels.clear()
        model(torch.randn(1, 3, 64, 64))
    assert (3, 1) in conv_kernels  # the fast path again
