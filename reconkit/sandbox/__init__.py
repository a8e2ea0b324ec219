"""The offline CyberSource double: a local server speaking the same HTTP protocol.

It verifies signatures, keeps credits in SQLite, runs the daily batch on a controllable clock,
injects faults on demand and writes settlement files with known discrepancies.
"""

from .faults import FAULT_KINDS, FaultPlan
from .server import Sandbox, SandboxCredentials, SandboxKeyFiles
from .state import TRIGGERS

__all__ = ["FAULT_KINDS", "TRIGGERS", "FaultPlan", "Sandbox", "SandboxCredentials", "SandboxKeyFiles"]
