"""The python SDK's pinned spec (0cd553d): hooks.feature."""

from pytest_bdd import scenarios

from .seed import feature

scenarios(feature("spec-0cd553d-python-sdk-pinned/hooks.feature"))
