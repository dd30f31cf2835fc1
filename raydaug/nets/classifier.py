"""The classifier C: ``classifier=small|badgan`` (the project's nets), ``torchvision:<name>`` (any classification
builder of ``torchvision.models``, untrained) or ``<module>:<factory>`` (a user's importable callable).

A user's factory is called as ``factory(channels=…, num_classes=…, image_size=…)`` and must return an
``nn.Module`` mapping ``(N, channels, image_size, image_size)`` floats to ``(N, num_classes)`` logits. Every
classifier is checked with one forward pass in each mode before training: a bad one fails naming the key.
"""
from __future__ import annotations

import copy
import importlib

import torch
from torch import nn

from ..allowed import NET_FAMILIES, TORCHVISION_PREFIX, classifier_spec_error
from ..errors import ConfigError
from .blocks import conv_stack


def torchvision_classifiers() -> list[str]:
    import torchvision.models as models

    return sorted(models.list_models(module=models))


def _first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d] | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, attribute = name.rpartition(".")
            return model.get_submodule(parent_name) if parent_name else model, attribute, module
    return None


def _torchvision(name: str, channels: int, num_classes: int) -> nn.Module:
    import torchvision.models as models

    known = torchvision_classifiers()
    if name not in known:
        raise ConfigError(f"classifier=torchvision:{name}: not a classification model of torchvision.models; "
                          f"choose one of {', '.join(known)}")
    model = models.get_model(name, weights=None, num_classes=num_classes)
    if channels != 3:
        # torchvision's builders take RGB: the first convolution is rebuilt for the data's channel count
        found = _first_conv(model)
        if found is None:
            raise ConfigError(f"classifier=torchvision:{name}: no convolution to adapt to {channels} channel(s)")
        parent, attribute, conv = found
        setattr(parent, attribute, nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride,
                                             conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                                             conv.padding_mode))
    return model


def _factory(spec: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    module_name, _, attribute = spec.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the user's module failing as it imports
        raise ConfigError(f"classifier={spec}: cannot import module {module_name!r} "
                          f"({type(error).__name__}: {error}); it must be importable where training runs "
                          "(installed, or on PYTHONPATH)") from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigError(f"classifier={spec}: module {module_name!r} has no callable {attribute!r}")
    try:
        model = factory(channels=channels, num_classes=num_classes, image_size=image_size)
    except Exception as error:
        raise ConfigError(f"classifier={spec}: factory(channels={channels}, num_classes={num_classes}, "
                          f"image_size={image_size}) failed: {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise ConfigError(f"classifier={spec}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_classifier(model: nn.Module, spec: str, channels: int, num_classes: int, image_size: int) -> None:
    """One forward pass of a batch of 2 in training and in eval mode: each must give ``(2, num_classes)``
    logits. Runs on a copy, so the model's BatchNorm statistics stay as built."""
    probe = copy.deepcopy(model)
    batch = torch.rand(2, channels, image_size, image_size)
    for training in (True, False):
        probe.train(training)
        try:
            with torch.no_grad():
                out = probe(batch)
        except Exception as error:
            raise ConfigError(f"classifier={spec}: a ({2}, {channels}, {image_size}, {image_size}) batch fails "
                              f"in {'training' if training else 'eval'} mode: {type(error).__name__}: "
                              f"{' '.join(str(error).split())[:300]}") from error
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"classifier={spec}: a batch of 2 gives {got} in "
                              f"{'training' if training else 'eval'} mode, expected logits of shape "
                              f"(2, {num_classes})")


def build_classifier(spec: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    if spec in NET_FAMILIES:
        return conv_stack(spec, channels, num_classes, image_size, batchnorm=True)
    error = classifier_spec_error(spec)
    if error:
        raise ConfigError(f"classifier={spec!r} is not allowed; {error}")
    if spec.startswith(TORCHVISION_PREFIX):
        model = _torchvision(spec[len(TORCHVISION_PREFIX):], channels, num_classes)
    else:
        model = _factory(spec, channels, num_classes, image_size)
    check_classifier(model, spec, channels, num_classes, image_size)
    return model
