"""navkit.perception."""
