"""Style transfer methods."""

from brushwork.transfer.gatys import GatysResult, GatysSettings, StepInfo, gatys

__all__ = ["GatysResult", "GatysSettings", "StepInfo", "gatys"]
