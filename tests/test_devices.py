"""Devices per OS with torch's availability simulated: CUDA (Windows, Linux), MPS (Apple
Silicon), the CPU everywhere; the dtype each one gets; the device list for ``--devices auto``."""

from __future__ import annotations

import platform

import pytest
import torch

from pixelkiln_server.backends.diffusers_load import (
    auto_devices,
    mps_supports_bf16,
    pick_device,
    pick_dtype,
)
from pixelkiln_server.catalogue import SHIPPED_MODEL, lookup


def simulate(
    monkeypatch: pytest.MonkeyPatch, cuda: int = 0, mps: bool = False, macos: str = ""
) -> None:
    """``cuda`` CUDA devices, MPS available or not, and the macOS release ("" elsewhere)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    machine = "arm64" if macos else ""
    monkeypatch.setattr(platform, "mac_ver", lambda: (macos, ("", "", ""), machine))


@pytest.mark.parametrize(
    ("cuda", "mps", "device", "devices"),
    [
        (2, False, "cuda", ["cuda:0", "cuda:1"]),  # Windows or Linux, two GPUs
        (1, False, "cuda", ["cuda:0"]),
        (0, True, "mps", ["mps"]),  # Apple Silicon
        (0, False, "cpu", ["cpu"]),  # anywhere else
    ],
)
def test_auto_picks_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: int, mps: bool, device: str, devices: list[str]
) -> None:
    simulate(monkeypatch, cuda=cuda, mps=mps)
    assert pick_device("auto") == device
    assert auto_devices() == devices


def test_an_explicit_device_is_taken_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch, cuda=2)
    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"


def test_a_torch_without_mps_backend_means_no_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch)
    monkeypatch.delattr(torch.backends, "mps")
    assert pick_device("auto") == "cpu" and auto_devices() == ["cpu"]


@pytest.mark.parametrize(
    ("macos", "bf16"), [("13.6.1", False), ("14.0", True), ("15.2", True), ("", False)]
)
def test_bf16_on_mps_needs_macos_14(
    monkeypatch: pytest.MonkeyPatch, macos: str, bf16: bool
) -> None:
    simulate(monkeypatch, mps=True, macos=macos)
    assert mps_supports_bf16() is bf16
    expected = torch.bfloat16 if bf16 else torch.float32  # never fp16: DiTs overflow in it
    assert pick_dtype("mps", "flux") == expected
    assert pick_dtype("mps", "z-image") == expected
    assert pick_dtype("mps", "sd") == torch.float16  # UNet families: fp16 on every macOS
    assert pick_dtype("mps", "sdxl") == torch.float16


def test_dtypes_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch, cuda=1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert pick_dtype("cuda:0", "sd") == torch.float16
    assert pick_dtype("cuda:0", "flux") == torch.bfloat16
    assert pick_dtype("cpu", "sd") == torch.float32
    assert pick_dtype("cpu", "flux") == torch.float32
    assert pick_dtype("mps", "flux", "fp16") == torch.float16  # asked for: taken


def test_the_default_model_on_a_mac_runs_fp16_on_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch, mps=True, macos="13.5")
    spec = lookup(SHIPPED_MODEL)
    assert spec.family not in ("flux", "z-image")
    assert pick_device("auto") == "mps"
    assert pick_dtype(pick_device("auto"), spec.family) == torch.float16
