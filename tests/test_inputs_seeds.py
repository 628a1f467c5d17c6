"""randomise_seeds: new seeds within each input's declared range; links and other values untouched."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from prediction.seeds import NUMPY_SEED_MAX, UNKNOWN_RANGE, randomise_seeds, seed_ranges

OBJECT_INFO = Path(__file__).resolve().parent / "reference" / "comfyui" / "object_info.json"


@pytest.fixture(scope="module")
def ranges() -> dict:
    return seed_ranges(json.loads(OBJECT_INFO.read_text(encoding="utf-8")))


def test_seed_ranges_read_from_object_info(ranges: dict) -> None:
    assert ranges[("KSampler", "seed")] == (0, 0xFFFFFFFFFFFFFFFF)
    assert ranges[("KSamplerAdvanced", "noise_seed")] == (0, 0xFFFFFFFFFFFFFFFF)
    assert ranges[("IdeogramV1", "seed")] == (0, 2**31 - 1)
    assert ("LatentBatchSeedBehavior", "seed_behavior") not in ranges


WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "model": ["4", 0]}},
    "4": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 7}},
    "5": {"class_type": "IdeogramV1", "inputs": {"seed": 1}},
    "6": {"class_type": "SomeCustomNode", "inputs": {"rand_seed": 3}},
    "7": {"class_type": "KSampler", "inputs": {"seed": ["9", 0]}},  # a link: the seed comes from node 9
    "8": {"class_type": "Custom", "inputs": {"seed": True, "noise_seed": 1.5, "rand_seed": "12"}},
}


def test_every_integer_seed_randomised_within_its_range(ranges: dict) -> None:
    original = json.loads(json.dumps(WORKFLOW))
    randomised, changes = randomise_seeds(WORKFLOW, ranges=ranges, rng=random.Random(1))
    assert [(c.node_id, c.input_name, c.old) for c in changes] == [
        ("3", "seed", 42),
        ("4", "noise_seed", 7),
        ("5", "seed", 1),
        ("6", "rand_seed", 3),
    ]
    for change in changes:
        assert randomised[change.node_id]["inputs"][change.input_name] == change.new
    assert 0 <= randomised["3"]["inputs"]["seed"] <= NUMPY_SEED_MAX
    assert 0 <= randomised["5"]["inputs"]["seed"] <= 2**31 - 1
    assert UNKNOWN_RANGE[0] <= randomised["6"]["inputs"]["rand_seed"] <= UNKNOWN_RANGE[1]
    assert randomised["7"] == WORKFLOW["7"] and randomised["8"] == WORKFLOW["8"]
    assert randomised["3"]["inputs"]["steps"] == 20
    assert original == WORKFLOW


def test_draws_stay_within_narrow_declared_range() -> None:
    workflow = {"1": {"class_type": "Narrow", "inputs": {"seed": 5}}}
    rng = random.Random(2)
    values = {
        randomise_seeds(workflow, ranges={("Narrow", "seed"): (10, 12)}, rng=rng)[0]["1"]["inputs"]["seed"]
        for _ in range(60)
    }
    assert values == {10, 11, 12}


def test_full_range_seeds_use_more_than_31_bits(ranges: dict) -> None:
    rng = random.Random(3)
    draws = [randomise_seeds(WORKFLOW, ranges=ranges, rng=rng)[0]["3"]["inputs"]["seed"] for _ in range(50)]
    assert max(draws) > 2**31 and max(draws) <= NUMPY_SEED_MAX


def test_without_ranges_every_seed_fits_every_builtin_node(ranges: dict) -> None:
    _, changes = randomise_seeds(WORKFLOW, rng=random.Random(4))
    assert len(changes) == 4
    for change in changes:
        assert UNKNOWN_RANGE[0] <= change.new <= UNKNOWN_RANGE[1]
    assert min(high for _, high in ranges.values()) >= UNKNOWN_RANGE[1]


def test_same_rng_seed_same_result() -> None:
    one = randomise_seeds(WORKFLOW, rng=random.Random(5))[0]
    other = randomise_seeds(WORKFLOW, rng=random.Random(5))[0]
    assert one == other


def test_workflow_without_seeds_unchanged() -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}
    assert randomise_seeds(workflow) == (workflow, [])
