"""fedbearer test suite."""
