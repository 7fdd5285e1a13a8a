"""Names the command line offers for devices and precisions (no torch import here,
so that building the argument parsers stays fast)."""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
