"""Find, read and validate ``spaces/NAME.yaml`` files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from backbones import ATTENTION, block_indices, check_blocks, reduction_fits, stage_channels, stage_depths, stage_positions
from spaces.schema import SearchSpace, SpaceError, parse_space

SPACES_DIR = Path(__file__).resolve().parent


def available_spaces() -> list[str]:
    """Names of the spaces shipped in ``spaces/`` (each is ``NAME.yaml``)."""
    return sorted(path.stem for path in SPACES_DIR.glob("*.yaml"))


def load_space(name: str) -> SearchSpace:
    """Load ``spaces/NAME.yaml`` (or a path to a YAML file) and validate its schema.

    Raises :class:`SpaceError` with one line listing the available spaces when ``name`` is unknown.
    """
    path = Path(name)
    if path.suffix not in {".yaml", ".yml"} or not path.is_file():
        path = SPACES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise SpaceError(f"unknown space {name!r}; available spaces: {', '.join(available_spaces())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpaceError(f"space {name!r}: {path} is not valid YAML ({first})") from None
    return parse_space(raw, name=path.stem)


def check_space_fits(space: SearchSpace, *, backbone: str, in_chans: int,
                     backbone_kwargs: Mapping[str, Any] | None = None) -> list[int]:
    """Check that ``backbone`` has the space's stages, supports every offered position at each, has every offered
    block index, and that every offered ratio leaves >= 1 channel (at the stage's output width; ``in_block`` widths are checked by ``build``).

    Called before anything trains. Returns the output channels per stage.
    """
    try:
        channels = stage_channels(backbone=backbone, in_chans=in_chans, backbone_kwargs=backbone_kwargs)
    except ValueError as exc:
        raise SpaceError(str(exc)) from None
    if len(channels) != space.num_stages:
        raise SpaceError(
            f"space {space.name!r} has num_stages={space.num_stages} but backbone {backbone!r} has "
            f"{len(channels)} stages (0..{len(channels) - 1})"
        )
    positions = stage_positions(backbone=backbone, backbone_kwargs=backbone_kwargs)
    depths = stage_depths(backbone=backbone, backbone_kwargs=backbone_kwargs)
    for stage in space.stages:
        for blocks in () if stage.per_block else stage.blocks:
            try:
                block_indices(check_blocks(blocks), depths[stage.index])
            except ValueError as err:
                raise SpaceError(f"space {space.name!r}: stage {stage.index} of {backbone}: {err}") from None
        for position in stage.position:
            if position not in positions[stage.index]:
                raise SpaceError(
                    f"space {space.name!r}: stage {stage.index} of {backbone} does not support position "
                    f"{position!r}; valid positions here: {', '.join(positions[stage.index])}"
                )
        width = channels[stage.index]
        takes_reduction = any("reduction" in ATTENTION[kind].knobs for kind in stage.types + stage.then)
        for ratio in stage.reduction if takes_reduction else ():
            if not reduction_fits(width, ratio):
                raise SpaceError(
                    f"space {space.name!r}: stage {stage.index} has {width} channels, so reduction ratio {ratio} "
                    f"leaves none; valid ratios here: 1..{width}"
                )
    return channels
