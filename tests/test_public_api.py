"""The package's public names: exactly these, each importable, each the real object."""

from __future__ import annotations

import importlib

import pytest

import gatectl


def test_exported_names_are_exactly_the_public_api() -> None:
    assert sorted(gatectl.__all__) == sorted(["__version__", *gatectl._EXPORTS])


def test_every_exported_name_resolves_to_its_module_object() -> None:
    for name, module in gatectl._EXPORTS.items():
        assert getattr(gatectl, name) is getattr(importlib.import_module(module), name)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        gatectl.no_such_name  # noqa: B018
