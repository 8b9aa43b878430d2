"""The output stage: per-channel requantization of the result rows to INT8/INT4 codes."""
