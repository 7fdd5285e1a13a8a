"""The textbook Gatys loop, written plainly, as the reference the benchmark compares with.

This is the loop found in tutorials and one-off scripts: a torchvision-layout
VGG-19 ``features`` run to its end on every evaluation, activations collected
by name on the way, float32 throughout, full resolution from the first step,
L-BFGS on the pixels started from the content image. The loss is that of the
pixels clamped to [0, 1], as in brushwork, so that both optimise the image they
return. Nothing else is tuned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"]
CFG += [512, 512, 512, 512, "M"]


def textbook_vgg19(state_dict: dict[str, torch.Tensor]) -> tuple[nn.Sequential, list[str]]:
    """torchvision's VGG-19 ``features`` with the given weights, and its layer names."""
    layers, names, channels, block, conv = [], [], 3, 1, 1
    for item in CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            channels, conv = item, conv + 1
    features = nn.Sequential(*layers)
    features.load_state_dict({k.removeprefix("features."): v for k, v in state_dict.items()})
    return features.eval().requires_grad_(False), names


def get_features(model: nn.Sequential, names: list[str], image: torch.Tensor, wanted: set[str]):
    x = (image - MEAN.to(image.device)) / STD.to(image.device)
    out = {}
    for name, layer in zip(names, model, strict=True):
        x = layer(x)
        if name in wanted:
            out[name] = x
    return out


def gram(features: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    f = features.view(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def textbook_loss(
    feats: dict[str, torch.Tensor],
    content_targets: dict[str, torch.Tensor],
    style_grams: dict[str, torch.Tensor],
    *,
    content_layers: tuple[str, ...],
    style_layers: tuple[str, ...],
    content_weight: float,
    style_weight: float,
) -> torch.Tensor:
    """w_c Σ MSE(features, content) + w_s Σ MSE(Gram, style Gram): the scalar loss."""
    c = sum(F.mse_loss(feats[n], content_targets[n]) for n in content_layers)
    s = sum(F.mse_loss(gram(feats[n]), style_grams[n]) for n in style_layers)
    return content_weight * c + style_weight * s


def plain_gatys(
    model: nn.Sequential,
    names: list[str],
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    steps: int,
    content_layers: tuple[str, ...],
    style_layers: tuple[str, ...],
    content_weight: float,
    style_weight: float,
    line_search: bool = True,
    on_step=None,
) -> tuple[torch.Tensor, list[float]]:
    """Optimise content (1, 3, H, W) towards style (1, 3, H', W'); ``steps`` L-BFGS evaluations."""
    wanted = set(content_layers) | set(style_layers)
    with torch.no_grad():
        content_targets = get_features(model, names, content, wanted)
        style_targets = {n: gram(f) for n, f in get_features(model, names, style, wanted).items()}
    image = content.clone().requires_grad_(True)
    # max_eval bounds the evaluations (a strong-Wolfe line search may overshoot by a
    # few; the benchmark reports the count).
    optimizer = torch.optim.LBFGS(
        [image],
        max_iter=steps,
        max_eval=steps,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe" if line_search else None,
    )
    losses = []

    def closure():
        optimizer.zero_grad()
        # The loss of the image as it will be saved: without this, L-BFGS drifts out of
        # [0, 1] and the clamped result is far worse than its loss (see docs/gatys.md).
        feats = get_features(model, names, image.clamp(0, 1), wanted)
        loss = textbook_loss(
            feats,
            content_targets,
            style_targets,
            content_layers=content_layers,
            style_layers=style_layers,
            content_weight=content_weight,
            style_weight=style_weight,
        )
        loss.backward()
        losses.append(loss.item())
        if on_step is not None:
            on_step(len(losses))
        return loss

    # Like the tutorial, call step() until the evaluation budget is spent (L-BFGS may
    # return early when a direction is not a descent direction).
    # Each call evaluates at least once, so this ends.
    while len(losses) < steps:
        for group in optimizer.param_groups:
            group["max_iter"] = group["max_eval"] = steps - len(losses)
        optimizer.step(closure)
    return image.detach().clamp(0, 1), losses
