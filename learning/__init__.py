"""navkit.learning."""
