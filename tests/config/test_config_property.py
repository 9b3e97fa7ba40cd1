"""Whatever TOML can hold, validation answers with a Config or with problems."""

from __future__ import annotations

import copy
import os
from typing import Any

from config_testing import base
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitors.config import ConfigError, Problem, config_from_dict

KEYS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "name",
            "kind",
            "type",
            "sku",
            "components",
            "tags",
            "hero",
            "wms",
            "erp",
            "shopify",
            "quantities",
            "available",
            "default",
            "absolute",
            "percent",
            "token",
            "skus",
        ]
    ),
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["shopify", "rest", "csv", "wms", "erp", "hero", "bearer", "https://x.io"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=16,
)
TOP_KEYS = st.sampled_from(list(base())) | st.text(max_size=8)
RANDOM_CONFIGS = st.dictionaries(TOP_KEYS, VALUES, max_size=8)


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The valid base with a few random subtrees replaced, added or deleted."""
    data = base()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        node: Any = data
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            if not children:
                break
            key, child = draw(st.sampled_from(children))
            if not isinstance(child, dict | list) or draw(st.booleans()):
                action = draw(st.sampled_from(["replace", "delete", "add"]))
                if action == "replace":
                    node[key] = draw(VALUES)
                elif action == "delete":
                    del node[key]
                elif isinstance(node, dict):
                    node[draw(KEYS)] = draw(VALUES)
                else:
                    node.append(draw(VALUES))
                break
            node = child
    return data


EXAMPLES = int(os.environ.get("CONFIG_FUZZ_EXAMPLES", "300"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(RANDOM_CONFIGS, mutated_configs()))
def test_any_toml_value_validates_or_reports_problems(data: dict[str, Any]) -> None:
    before = copy.deepcopy(data)
    problems: list[Problem] = []
    try:
        config_from_dict(data)
    except ConfigError as error:
        problems = error.problems
        assert problems, "a ConfigError without problems"
    for problem in problems:
        assert isinstance(problem.path, str)
        assert isinstance(problem.message, str)
        assert problem.message
        assert "pydantic" not in problem.message
    assert data == before  # the input is never modified
