"""Contract suites: one set of cases run against every implementation of an interface."""
