"""The vendor's dense peak rates, so the bench part can say what share of the card its reverse chain reaches.

Source: NVIDIA's H100 and H200 Tensor Core GPU datasheets (SXM form): FP32 67 TFLOPS; TF32 and BF16
tensor-core rates are quoted with 2:4 sparsity (989 and 1,979 TFLOPS), dense is half.
"""

from __future__ import annotations

PEAK_SOURCE = "vendor spec: NVIDIA H100 / H200 Tensor Core GPU datasheets, SXM; dense = half the sparsity figure"
SPEC_PEAKS: dict[str, dict[str, float]] = {  # FLOP/s
    "H100 SXM": {"bf16": 989.5e12, "tf32": 494.5e12, "fp32": 67e12},
    "H200": {"bf16": 989.5e12, "tf32": 494.5e12, "fp32": 67e12},
}


def spec_card(gpu: str | None) -> str | None:
    """The SPEC_PEAKS row for a device name ('NVIDIA H100 80GB HBM3' is the SXM card; PCIe/NVL are not listed)."""
    if not gpu:
        return None
    if "H200" in gpu and "NVL" not in gpu:
        return "H200"
    if "H100" in gpu and not any(other in gpu for other in ("PCIe", "NVL")):
        return "H100 SXM"
    return None


def share_of_peak(flops: float | None, gpu: str | None, precision: str) -> float | None:
    """None where the card has no listed peak (a CPU, a PCIe card): the summary then says n/a."""
    card = spec_card(gpu)
    return None if card is None or flops is None else flops / SPEC_PEAKS[card][precision]
