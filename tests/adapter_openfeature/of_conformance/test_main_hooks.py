"""The spec's current hooks.feature."""

from pytest_bdd import scenarios

from .seed import feature

scenarios(feature("spec-main/hooks.feature"))
