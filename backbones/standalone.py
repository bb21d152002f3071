"""Write a built architecture out as Python source that needs only torch and timm (not this package).

``standalone_source(arch)`` returns a module whose ``build_model()`` creates the same timm model and applies the
same edits ``backbones.build`` made (``build_recorded``: small-input stem, attention modules, head), so its
state-dict keys and shapes, and with the same weights its outputs, equal ``build(arch)``'s. Attention classes that
timm has are imported from timm; the ones this package writes itself (``backbones.modules``, the attention-pool
head) are copied in as source, with the module-level helpers they use.

A segmentation architecture (``task: segment``) is written the same way: the encoder edits, then ``model =
UNet(model, ...)`` (``backbones.unet``, copied in; it imports segmentation_models_pytorch, which the module then needs
too), then the decoder's gates and attention modules.
"""
from __future__ import annotations

import inspect
import json
import pprint
import re
import sys
from collections.abc import Mapping
from typing import Any

import timm.layers

from .arch import ArchConfig
from .build import build_recorded
from .calls import Edit

_OWN_PACKAGE = __name__.split(".")[0]  # classes defined under this package are written out, not imported
_APPLY = '''
def _put(model: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` with ``module``."""
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _wrap(model: nn.Module, path: str, module: nn.Module) -> None:
    """The submodule at ``path`` becomes ``nn.Sequential(it, module)`` (attention after the block)."""
    _put(model, path, nn.Sequential(model.get_submodule(path), module))


def _with(module: nn.Module, **children: nn.Module) -> nn.Module:
    """``module`` with the named children replaced (a child rebuilt after construction)."""
    for name, child in children.items():
        setattr(module, name, child)
    return module
'''
_EDIT_COMMENT = {"wrap": "after the block", "stride1": "small input: stem stride 1"}


def standalone_source(arch: ArchConfig | Mapping[str, Any], *, docstring: str, weights: str,
                      constants: Mapping[str, Any] | None = None, extra: str = "") -> str:
    """The module's text: ``docstring``; imports; written-out classes; ``constants`` (name -> JSON-able value,
    written as literals; ``ARCH`` is always one); ``build_model(*, pretrained=True)`` loading the safetensors file
    ``weights`` (a name beside the module) and returning the model in eval mode; ``load_model()``, the same with
    the weights; then ``extra`` (more functions, using only the imports here, PIL and numpy)."""
    arch = ArchConfig.from_dict(arch)
    _model, edits = build_recorded(arch)
    classes = list(dict.fromkeys(c for e in edits if e.call for c in e.call.classes()))
    imports = _timm_imports(c for c in classes if not _is_own(c) and not c.__module__.startswith("torch"))
    written = _written_out([c for c in classes if _is_own(c)])
    kwargs = dict(arch.backbone_kwargs)
    create = (f"timm.create_model({arch.backbone!r}, pretrained=False, in_chans={arch.in_chans}, "
              f"num_classes={arch.num_classes}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})")
    lines = [f"    model = {create}"] + [f"    {_edit_source(e)}" for e in edits]
    values = {"ARCH": arch.to_dict(), **(constants or {})}
    literals = "\n".join(f"{name} = {pprint.pformat(_plain(value), indent=4, sort_dicts=True, compact=True)}"
                         for name, value in values.items())
    return f'''"""{docstring.strip()}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import load_model as _load_weights
from torch import nn
{imports}

# --- modules written out from attnas (plain PyTorch) ------------------------------------------------------------
{written}
# --- the architecture -----------------------------------------------------------------------------------------
{literals}
WEIGHTS = Path(__file__).with_name({weights!r})
{_APPLY}

def build_model(*, pretrained: bool = True) -> nn.Module:
    """The architecture on timm's {arch.backbone}; with ``pretrained`` the weights from WEIGHTS. In eval mode."""
{chr(10).join(lines)}
    if pretrained:
        _load_weights(model, str(WEIGHTS))
    return model.eval()


def load_model() -> nn.Module:
    """The trained model: ``build_model()`` with the weights beside this file, in eval mode."""
    return build_model(pretrained=True)
{extra}'''


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples -> lists, so the literal reads as JSON does


def _is_own(cls: type) -> bool:
    return cls.__module__.split(".")[0] == _OWN_PACKAGE


def _timm_imports(classes: Any) -> str:
    """``from timm.layers import A, B`` (the public path where timm re-exports the class, else its own module)."""
    by_module: dict[str, list[str]] = {}
    for cls in classes:
        module = "timm.layers" if getattr(timm.layers, cls.__name__, None) is cls else cls.__module__
        by_module.setdefault(module, []).append(cls.__name__)
    return "".join(f"from {m} import {', '.join(sorted(set(n)))}\n" for m, n in sorted(by_module.items()))


def _written_out(classes: list[type]) -> str:
    """Source of ``classes`` and of the module-level names of their modules they use (transitively), in each
    module's file order."""
    blocks: list[str] = []
    for module_name in dict.fromkeys(c.__module__ for c in classes):
        module = sys.modules[module_name]
        local = {name: obj for name, obj in vars(module).items()
                 if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == module_name}
        needed = {c.__name__ for c in classes if c.__module__ == module_name}
        todo = list(needed)
        while todo:
            text = inspect.getsource(local[todo.pop()])
            for name in local:
                if name not in needed and re.search(rf"\b{re.escape(name)}\b", text):
                    needed.add(name)
                    todo.append(name)
        ordered = sorted(needed, key=lambda n: inspect.getsourcelines(local[n])[1])
        blocks += [f"# from {module_name}\n" + inspect.getsource(local[n]) for n in ordered]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def _edit_source(edit: Edit) -> str:
    if edit.op == "stride1":
        return f"model.get_submodule({edit.path!r}).stride = (1, 1)  # {_EDIT_COMMENT['stride1']}"
    call = edit.call.source()
    if edit.op == "nest":  # the model becomes the first argument of the call: UNet(model, indices=..., ...)
        head, _, rest = call.partition("(")
        return f"model = {head}(model{', ' if rest != ')' else ''}{rest}"
    return f"_wrap(model, {edit.path!r}, {call})" if edit.op == "wrap" else f"_put(model, {edit.path!r}, {call})"
