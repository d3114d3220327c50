"""navkit.planning."""
