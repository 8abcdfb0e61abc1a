"""An eval of another package, as a user would add one: one module and one YAML (tests/unit/test_add_an_eval.py)."""
