"""Hypothesis strategies the fuzz tests share: JSON values, config dicts near the valid ones,
and JSON text that is broken in the ways files break (cut short, nested too deep)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# Values at and around the edges validation checks: signs, zero, one, huge, non-finite.
EDGE_NUMBERS = st.sampled_from([0, 1, -1, 2, 3, 7, 8, 255, 256, 257, 2**31, 2**63, 2**64, 10**12, 10**30,
                                0.0, -0.0, 0.5, 1.0, 1.5, 1e-9, 1e308, float("inf"), float("-inf"), float("nan")])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), EDGE_NUMBERS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def near_valid_dicts(valid: dict, choices: dict[str, list]) -> st.SearchStrategy[dict]:
    """``valid`` with a few fields replaced, dropped or added: most examples reach the checks deep
    inside (a config that is wrong in one field), not only the first ``isinstance``.

    ``choices``: for each field, values worth trying besides arbitrary JSON (its legal strings)."""
    fields = sorted(valid)

    def value_for(name: str) -> st.SearchStrategy:
        return st.one_of(JSON_VALUES, EDGE_NUMBERS, st.sampled_from(choices.get(name, [None])))

    changed = st.lists(st.sampled_from(fields), max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: value_for(name) for name in names}))
    dropped = st.lists(st.sampled_from(fields), max_size=2, unique=True)
    added = st.dictionaries(st.text(min_size=1, max_size=12), JSON_VALUES, max_size=1)
    return st.tuples(changed, dropped, added, st.booleans()).map(
        lambda t: {**{k: v for k, v in valid.items() if k not in t[1]}, **t[0], **(t[2] if t[3] else {})})


def json_texts(dicts: st.SearchStrategy[dict]) -> st.SearchStrategy[str]:
    """JSON text of ``dicts``, sometimes cut short, sometimes any value, nested deep or not JSON."""
    whole = dicts.map(lambda d: json.dumps(d, allow_nan=True))
    cut = st.tuples(whole, st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])])
    deep = st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n)
    deep_object = st.integers(1, 100_000).map(lambda n: '{"a":' * n + "1" + "}" * n)
    long_number = st.integers(1, 10_000).map(lambda n: '{"d_model": ' + "9" * n + "}")
    return st.one_of(whole, whole, whole, cut, JSON_VALUES.map(json.dumps), st.text(), deep, deep_object,
                     long_number)
