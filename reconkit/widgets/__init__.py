"""The analyst apps (ipywidgets): ``IssueCreditApp`` (notebook 01) and ``InvestigateApp`` (notebook 02)."""

from .common import ConnectionBanner
from .investigate import InvestigateApp
from .issue import IssueCreditApp

__all__ = ["ConnectionBanner", "InvestigateApp", "IssueCreditApp"]
