"""Search spaces: ``spaces/NAME.yaml`` files, their schema and the conditional sampler."""

from spaces.loader import available_spaces, check_space_fits, load_space
from spaces.schema import (DEFAULT_CONTROLS, PLAIN_CONTROL, Budget, Control, DecoderSpace, SearchSpace, SpaceError,
                           StageSpace)

__all__ = ["DEFAULT_CONTROLS", "PLAIN_CONTROL", "Budget", "Control", "DecoderSpace", "SearchSpace", "SpaceError", "StageSpace", "available_spaces", "check_space_fits", "load_space"]
