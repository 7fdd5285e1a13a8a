"""Names the command line offers for devices and precisions (no torch import here,
so that building the argument parsers stays fast)."""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")

#: ``--smooth`` modes of the photorealistic methods; the bare flag means DEFAULT_SMOOTH
#: (the closed-form solve of the PhotoWCT paper and reference code).
SMOOTH_CHOICES = ("exact", "fast")
DEFAULT_SMOOTH = "exact"
