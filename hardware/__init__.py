"""navkit.hardware."""
