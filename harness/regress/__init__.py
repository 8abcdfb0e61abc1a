"""The CI regression gate (``harness-regress``): per-item pairing, loading runs and baseline
snapshots, the paired test, verdicts and their markdown / JUnit summaries (docs/regression.md)."""
