"""Explanations on modern layers: Grad-CAM on token and channels-last layers (equal to the
computation done by hand on the reshaped tensors), sensible default layers, and receptive
fields through depthwise convs, patch embeddings, windowed and global attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from layoutzoo import ChannelsLastBlock, TinyViT

from cnnviz.core.explain import grad_cam, last_conv_layer, receptive_field

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def _model(cls):
    torch.manual_seed(0)
    return cls().eval()


def _cam_by_hand(model, x, layer, to_maps, cls):
    """Grad-CAM computed here: hook the layer, take the gradient, reshape both by hand."""
    acts = {}
    mod = model.get_submodule(layer)
    h = mod.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            out = model(xg)
            (g,) = torch.autograd.grad(out[0, cls], acts["a"])
    finally:
        h.remove()
    a, g = to_maps(acts["a"].detach()[0]), to_maps(g[0])
    cam = torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam / cam.max()).numpy() if cam.max() > 0 else cam.numpy()


def test_grad_cam_on_tokens_is_reshaped_to_the_grid():
    model, x = _model(TinyViT), torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    # the default for a ViT: the input of the last attention (later patch tokens get no gradient)
    assert last_conv_layer(model, x) == "blocks.1.ln1"
    for cls in range(4):
        heat, used = grad_cam(model, x, target_class=cls)
        ref = _cam_by_hand(model, x, "blocks.1.ln1", lambda t: t[1:].reshape(4, 6, -1).permute(2, 0, 1), cls)
        assert used == "blocks.1.ln1" and heat.shape == (32, 48)
        assert torch.allclose(torch.from_numpy(heat), torch.from_numpy(ref), atol=1e-5)
    assert any(grad_cam(model, x, target_class=c)[0].max() > 0 for c in range(4))


def test_grad_cam_on_a_channels_last_layer_is_permuted():
    model, x = _model(ChannelsLastBlock), torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    heat, used = grad_cam(model, x, target_class=1, layer="fc1")
    ref = _cam_by_hand(model, x, "fc1", lambda t: t.permute(2, 0, 1), 1)
    assert torch.allclose(torch.from_numpy(heat), torch.from_numpy(ref), atol=1e-5)


def test_receptive_fields_through_depthwise_conv_and_channels_last_mlp():
    rf = receptive_field(_model(ChannelsLastBlock), (1, 3, 32, 32))
    assert rf["stem"].size == (3, 3) and rf["stem"].jump == (2, 2)
    assert rf["dw"].size == (7, 7)  # 3 + (3 - 1) * 2, through the depthwise conv
    for name in ("to_last", "norm", "fc1", "act", "fc2"):  # per-pixel layers on channels-last maps
        assert rf[name] == rf["dw"] and rf[name].scope == "local", name
    assert rf["head"] is None


def test_receptive_fields_of_a_vit_patch_embedding_then_global_attention():
    rf = receptive_field(_model(TinyViT), (1, 3, 32, 48))
    assert rf["patch"].size == (8, 8) and rf["patch"].jump == (8, 8) and rf["patch"].scope == "local"
    assert rf["blocks.0.ln1"] == rf["patch"]  # tokens before attention: still one patch each
    for name in ("blocks.0.attn.proj", "blocks.0.ln2", "blocks.1.ln1", "norm"):
        assert rf[name].scope == "global" and rf[name].size == (32, 48) and rf[name].jump == (0, 0), name


def test_receptive_fields_through_swin_windows_say_window():
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                            window_size=[2, 2], num_classes=3).eval()
    rf = receptive_field(model, (1, 3, 32, 32))
    assert rf["features.0.0"].size == (4, 4) and rf["features.0.2"].scope == "local"
    attn = rf["features.1.0.attn"]
    assert attn.scope == "window" and attn.size == (12, 12) and attn.jump == (4, 4)  # 4 + (2*2 - 2) * 4
    assert rf["features.1.0"].scope == "window"
    merge = rf["features.2.reduction"]  # patch merging: every other token, 2x2 neighbours joined
    assert merge.jump == (8, 8) and merge.size == (16, 16)
