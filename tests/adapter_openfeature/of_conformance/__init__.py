"""OpenFeature Gherkin conformance suites run against ``ButtressProvider`` (pytest-bdd)."""
