"""Benchmarks: scripts that print figures and a markdown block for BENCHMARKS.md.

Run each as ``python -m benchmarks.NAME`` (``--help`` for options, ``--quick`` for a seconds-long smoke run):

- ``trial_vs_bare``: the trial's training loop against a bare PyTorch loop on the same model and data.
- ``data_pipeline``: device-resident uint8 batches + on-device augmentation against a torchvision DataLoader.
- ``latency_repeatability``: CV and rank stability of ``trials.probe.measure_latency`` over repeats.
- ``gpu_throughput``: CIFAR ResNet-18 training images/s (bf16, channels_last) against a DataLoader-fed loop.

Every script records device, torch version, thread count and date with its figures, and times the things it
compares side by side in one run (A B A B …, median of each). They import trials/ and backbones/ only (no Ray,
no MLflow), so they run wherever torch, torchvision and timm are installed.
"""
