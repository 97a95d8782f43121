"""The spec's current evaluation_v2.feature."""

from pytest_bdd import scenarios

from .seed import feature

scenarios(feature("spec-main/evaluation_v2.feature"))
