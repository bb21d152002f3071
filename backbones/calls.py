"""``Call``: one module constructor call kept as data, so a built model can be written back out as source.

``backbones.build`` makes every module it adds to a timm model through a ``Call`` (the attention modules, the
attention-pool head, the small-input stem edits) and records where it put it (:class:`Edit`). ``backbones.standalone``
turns that record into a Python module that rebuilds the same model from plain PyTorch + timm, without this package.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class Call:
    """``cls(*args, **kwargs)``, then ``setattr(module, name, child.build())`` for each of ``children`` (a child
    module replaced after construction, e.g. GatherExcite's MLP). Arguments are literals (numbers, bools, None,
    strings, tuples), classes (written by name) or other Calls (built first: ``nn.Sequential(a, b)``, a stack)."""

    cls: type[nn.Module]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    children: Mapping[str, Call] = field(default_factory=dict)

    def build(self) -> nn.Module:
        module = self.cls(*(a.build() if isinstance(a, Call) else a for a in self.args), **self.kwargs)
        for name, child in self.children.items():
            setattr(module, name, child.build())
        return module

    def classes(self) -> list[type]:
        """Every class this call names (its own, class-valued arguments, its children's), in order of appearance."""
        found = [self.cls, *(v for v in (*self.args, *self.kwargs.values()) if isinstance(v, type))]
        for child in (*self.children.values(), *(a for a in self.args if isinstance(a, Call))):
            found += child.classes()
        return list(dict.fromkeys(found))

    def source(self) -> str:
        """The call as Python source, naming classes by ``__name__`` (the writer imports or defines each)."""
        parts = [_literal(v) for v in self.args] + [f"{k}={_literal(v)}" for k, v in self.kwargs.items()]
        text = f"{_name(self.cls)}({', '.join(parts)})"
        if self.children:
            text = f"_with({text}, {', '.join(f'{k}={c.source()}' for k, c in self.children.items())})"
        return text


@dataclass(frozen=True)
class Edit:
    """One change ``build`` made to the timm model, at dotted module ``path``:

    - ``set``: ``path`` becomes ``call.build()`` (an ``in_block`` SE slot, a ``stage_end`` child, the head pool,
      a small-input stem conv or max-pool);
    - ``wrap``: the module at ``path`` becomes ``nn.Sequential(module, call.build())`` (``after_block``);
    - ``stride1``: the conv at ``path`` gets stride 1 (small input);
    - ``nest``: the whole model (``path`` is ``""``) becomes ``call.cls(model, *call.args, **call.kwargs)`` (a
      segmentation task's U-Net around the encoder); later edits' paths start from the new model.
    """

    op: str
    path: str
    call: Call | None = None


def _name(cls: type) -> str:
    return f"nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else cls.__name__


def _literal(value: Any) -> str:
    if isinstance(value, Call):
        return value.source()
    if isinstance(value, type):
        return _name(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, tuple):
        return f"({', '.join(_literal(v) for v in value)}{',' if len(value) == 1 else ''})"
    raise TypeError(f"Call argument {value!r} of type {type(value).__name__} cannot be written as source")
