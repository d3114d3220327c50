"""navkit.runner."""
