"""Small models as a user brings them (a factory module on the Python path), for the tests."""
from __future__ import annotations

import time

import torch
from torch import nn


class TwoPath(nn.Module):
    """A branchy classifier that is no nn.Sequential: two convolution paths added, then a head."""

    def __init__(self, classes: int = 7):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.left = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.right = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = self.left(x) + self.right(x)
        return self.head(x.mean(dim=(2, 3)))


def two_path() -> nn.Module:
    """The factory a parameter file names (`user_models:two_path`): seeded, so every build is alike."""
    torch.manual_seed(3)
    return TwoPath()


def small_cnn(classes: int = 5) -> nn.Sequential:
    """A plain classifier, exported to ONNX by the tests."""
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(6, classes)).eval()


def not_a_module() -> str:
    return "a model"


class Gated(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if y.sum() > 0 else -y


def gated() -> nn.Module:
    torch.manual_seed(5)
    return Gated()


class Mixed(nn.Module):
    """An Inception-like block: a stem, three paths over its output joined on channels, a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.a = nn.Conv2d(8, 4, 1)
        self.b = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.c = nn.MaxPool2d(3, stride=1, padding=1)
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([self.a(x), self.b(x), self.c(x)], dim=1)
        return self.head(x)


def mixed() -> nn.Module:
    torch.manual_seed(6)
    return Mixed()


class Stuck(nn.Module):
    """A fault injector, not a model: its forward never returns on a camera frame (normalised with a
    tiny std, so its values are in the hundreds), as a hung driver or kernel would; the random
    frame a model is warmed up with passes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().max() > 100:
            time.sleep(3600)
        return x.mean(dim=(2, 3))


def stuck() -> nn.Module:
    return Stuck()


class Raising(nn.Module):
    """A fault injector, not a model: its forward raises on every camera frame (normalised with a
    tiny std, so its values are in the hundreds), as a model with a bug would; the random frame a
    model is warmed up with passes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().max() > 100:
            raise RuntimeError("injected fault: this model raises on camera frames")
        return x.mean(dim=(2, 3))


def raising() -> nn.Module:
    return Raising()
