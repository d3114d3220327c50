"""navkit.cli."""
