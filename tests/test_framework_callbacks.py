"""The callbacks of the training frameworks (``registry.lightning``,
``registry.transformers``) import without their framework; asking for ``Callback``
then says what to install. Their behaviour with the frameworks is tested in
``tests/frameworks`` (``make test-frameworks``)."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

import registry.lightning
import registry.transformers


@pytest.mark.parametrize(
    ("module", "packages", "advice"),
    [
        (registry.lightning, ["lightning", "lightning.pytorch", "pytorch_lightning"], "lightning"),
        (registry.transformers, ["transformers"], "transformers"),
    ],
)
def test_callback_without_its_framework_names_what_to_install(
    module: ModuleType, packages: list[str], advice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    monkeypatch.setattr(module, "_built", {})
    assert module.Recording.__module__ == module.__name__
    with pytest.raises(ImportError, match=f"pip install {advice}"):
        _ = module.Callback
    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        _ = module.Trainer
