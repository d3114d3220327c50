"""navkit.sim."""
