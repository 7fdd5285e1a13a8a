"""Video style transfer: I/O, the frame loop, and temporally consistent methods.

* :mod:`brushwork.video.io` — decode/encode videos, GIFs and frame folders (PyAV).
* :mod:`brushwork.video.gatys_video` — Gatys with Ruder et al.'s temporal loss.
* :mod:`brushwork.video.feedforward_video` — per-frame network + flow blending.
* :mod:`brushwork.video.render` — the resumable frame loop.
* :mod:`brushwork.video.passes` — the refining sweeps of the multi-pass mode.
"""

from brushwork.video.feedforward_video import FeedForwardVideo, blend_with_previous
from brushwork.video.gatys_video import GatysVideo, GatysVideoSettings
from brushwork.video.io import VideoError, VideoInfo, iter_frames, probe_video, write_video
from brushwork.video.render import RenderResult, render_video

__all__ = [
    "FeedForwardVideo",
    "GatysVideo",
    "GatysVideoSettings",
    "RenderResult",
    "VideoError",
    "VideoInfo",
    "blend_with_previous",
    "iter_frames",
    "probe_video",
    "render_video",
    "write_video",
]
