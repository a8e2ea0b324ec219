"""The analyst apps (ipywidgets): ``IssueCreditApp`` (notebook 01) and ``InvestigateApp`` (notebook 02),
which embeds ``BreaksPanel``."""

from .breaks_panel import BreaksPanel
from .common import ConnectionBanner
from .investigate import InvestigateApp
from .issue import IssueCreditApp

__all__ = ["BreaksPanel", "ConnectionBanner", "InvestigateApp", "IssueCreditApp"]
