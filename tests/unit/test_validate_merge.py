"""The merge-join: pairs equal the intersection, unmatched rows are exactly the differences."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zdm.validate.merge import merge_all

# a row is (token, pk, ck); streams are sorted by (token, pk, ck) as the server sorts them
rows = st.sets(st.tuples(st.integers(-3, 3), st.integers(0, 3), st.integers(0, 5)), max_size=60)


def key(row):
    return row[1:]


@given(rows, rows, st.integers(1, 7))
def test_merge_pairs_every_common_row_and_reports_the_rest(o, t, page):
    # tokens are a function of the partition key, as in Cassandra
    o = sorted({(r[1] % 3 - 1, r[1], r[2]) for r in o})
    t = sorted({(r[1] % 3 - 1, r[1], r[2]) for r in t})
    pairs = list(merge_all(o, t, key, page=page))
    matched = {(a, b) for a, b in pairs if a and b}
    assert all(a == b for a, b in matched)
    assert {a for a, _ in matched} == set(o) & set(t)
    assert {a for a, b in pairs if b is None} == set(o) - set(t)
    assert {b for a, b in pairs if a is None} == set(t) - set(o)
    assert len(pairs) == len(set(o) | set(t))


def test_only_one_side_streams_through():
    o = [(1, 1, i) for i in range(5)]
    assert list(merge_all(o, [], key, page=2)) == [(r, None) for r in o]
