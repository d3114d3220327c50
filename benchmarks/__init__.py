"""navkit.benchmarks."""
