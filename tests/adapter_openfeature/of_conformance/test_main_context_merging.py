"""The spec's current contextMerging.feature."""

from pytest_bdd import scenarios

from .seed import feature

scenarios(feature("spec-main/contextMerging.feature"))
