"""Perception: sensor data -> what planners and controllers consume."""
from navkit.perception.scan_localizer import LocalizationResult, ScanLocalizer, ScanLocalizerConfig
from navkit.perception.scan_obstacles import scan_to_world_points

__all__ = ["LocalizationResult", "ScanLocalizer", "ScanLocalizerConfig", "scan_to_world_points"]
