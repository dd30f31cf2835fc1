"""Metric sinks: Parquet (the record analysis reads) and TensorBoard (for watching a run live)."""
