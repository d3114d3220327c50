"""navkit.control."""
