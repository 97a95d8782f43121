"""The spec's current evaluation.feature (deprecated upstream, still run)."""

from pytest_bdd import scenarios

from .seed import feature

scenarios(feature("spec-main/evaluation.feature"))
