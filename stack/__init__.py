"""navkit.stack."""
