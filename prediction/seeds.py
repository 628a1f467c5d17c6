"""`randomise_seeds`: a new random value for every `seed`, `noise_seed` and `rand_seed` in a workflow.

Each value is drawn from the input's own range as ComfyUI declares it (`seed_ranges` reads them from
`/object_info`): KSampler's seed goes to 0xffffffffffffffff, some API nodes' only to 2**31 - 1. Draws stop
at 2**32 - 1 even where the range goes higher, because custom nodes often hand the seed to numpy, which
accepts no more. An input whose range is not known gets 0 to 2**31 - 1, which every built-in node takes.
Only whole-number values are replaced; a seed fed by a link (`["5", 0]`) is left to the node it comes from.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SEED_INPUTS", "SeedChange", "randomise_seeds", "seed_ranges"]

log = logging.getLogger(__name__)

SEED_INPUTS = ("seed", "noise_seed", "rand_seed")
NUMPY_SEED_MAX = 2**32 - 1
UNKNOWN_RANGE = (0, 2**31 - 1)

SeedRanges = Mapping[tuple[str, str], tuple[int, int]]


@dataclass(frozen=True)
class SeedChange:
    """One seed input that was given a new value."""

    node_id: str
    class_type: str
    input_name: str
    old: int
    new: int


def seed_ranges(object_info: Mapping[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    """`{(class_type, input_name): (min, max)}` for the seed inputs declared in ComfyUI's `/object_info`."""
    ranges = {}
    for class_type, info in object_info.items():
        declared = info.get("input", {}) if isinstance(info, Mapping) else {}
        for section in ("required", "optional"):
            for name, spec in (declared.get(section) or {}).items():
                if name not in SEED_INPUTS or not isinstance(spec, list) or spec[:1] != ["INT"]:
                    continue
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
                low, high = options.get("min", UNKNOWN_RANGE[0]), options.get("max", UNKNOWN_RANGE[1])
                if isinstance(low, int) and isinstance(high, int) and low <= high:
                    ranges[(class_type, name)] = (low, high)
    return ranges


def randomise_seeds(
    workflow: Mapping[str, Any], *, ranges: SeedRanges | None = None, rng: random.Random | None = None
) -> tuple[dict[str, Any], list[SeedChange]]:
    """A copy of `workflow` (a parsed API workflow) with new seeds, and what changed, for the log."""
    rng = rng or random.Random()
    ranges = ranges or {}
    randomised = copy.deepcopy(dict(workflow))
    changes = []
    for node_id, node in randomised.items():
        class_type = node.get("class_type", "")
        inputs = node.get("inputs", {})
        for name in SEED_INPUTS:
            old = inputs.get(name)
            if not isinstance(old, int) or isinstance(old, bool):
                continue
            low, high = ranges.get((class_type, name), UNKNOWN_RANGE)
            new = rng.randint(low, max(low, min(high, NUMPY_SEED_MAX)))
            inputs[name] = new
            changes.append(SeedChange(str(node_id), class_type, name, old, new))
            log.info("Randomised %s of node %s (%s): %d -> %d", name, node_id, class_type, old, new)
    return randomised, changes
