"""The spec's current metadata.feature."""

from pytest_bdd import scenarios

from .seed import feature

scenarios(feature("spec-main/metadata.feature"))
