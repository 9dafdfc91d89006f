"""Colour/depth stamp synchroniser (syncvp_core.data.sync)."""
from __future__ import annotations

import numpy as np
import pytest

from syncvp_core.data.sync import StampSynchronizer, SyncEvent, synchronize

MS = 1_000_000
P = 100 * MS  # 10 Hz


def _stamps(n, period=P, t0=1_000_000_000):
    return [t0 + i * period for i in range(n)]


def _accounted(stats):
    return (stats.color_in == stats.pairs + stats.unmatched_color
            and stats.depth_in == stats.pairs + stats.unmatched_depth)


def test_jitter_within_slop_pairs_everything():
    rng = np.random.default_rng(1)
    c = [(t, f"c{i}") for i, t in enumerate(_stamps(50))]
    d = [(t + int(rng.uniform(-15, 15) * MS), f"d{i}") for i, t in enumerate(_stamps(50))]
    pairs, stats, events = synchronize(c, d, slop_s=0.02)
    assert len(pairs) == 50 and stats.pairs == 50
    assert [p.color for p in pairs] == [x[1] for x in c]
    assert [p.depth for p in pairs] == [x[1] for x in d]
    assert all(p.stamp_ns == p.color_stamp_ns for p in pairs)
    assert [p.stamp_ns for p in pairs] == sorted(p.stamp_ns for p in pairs)
    assert stats.unmatched_color == stats.unmatched_depth == 0 and not events
    assert stats.max_abs_dt_ns <= 15 * MS and _accounted(stats)


def test_outside_slop_reported_not_paired():
    c = [(t, i) for i, t in enumerate(_stamps(10))]
    d = [(t + (40 * MS if i == 4 else 2 * MS), i) for i, t in enumerate(_stamps(10))]
    pairs, stats, events = synchronize(c, d, slop_s=0.02)
    assert len(pairs) == 9 and 4 not in [p.color for p in pairs]
    assert stats.unmatched_color == 1 and stats.unmatched_depth == 1
    kinds = {(e.kind, e.stream) for e in events}
    assert kinds == {("unmatched", "color"), ("unmatched", "depth")}
    assert any("slop" in e.message for e in events)
    assert _accounted(stats)


def test_missing_depth_stretch_is_a_gap_not_bridged():
    c = [(t, i) for i, t in enumerate(_stamps(30))]
    d = [(t + 3 * MS, i) for i, t in enumerate(_stamps(30)) if not 10 <= i < 16]
    # even a generous slop (0.3 s = 3 frames) must not pair one depth with several colours
    for slop in (0.02, 0.3):
        pairs, stats, events = synchronize(c, d, slop_s=slop)
        gaps = [e for e in events if e.kind == "gap"]
        assert len(gaps) == 1 and gaps[0].stream == "depth" and stats.gaps == 1
        assert "0.700 s" in gaps[0].message
        assert len(pairs) == 24
        assert sorted(p.depth for p in pairs) == sorted(x[1] for x in d)  # each depth used once
        assert all(p.color == p.depth for p in pairs)  # never bridged to a far depth
        assert stats.unmatched_color == 6 and _accounted(stats)


def test_nearest_partner_wins():
    # depth 0 is 18 ms after colour 0 but only 15 ms before colour 1's slot: mutual-nearest pairing
    c = [(0, "c0"), (33 * MS, "c1"), (66 * MS, "c2")]
    d = [(18 * MS, "d0"), (51 * MS, "d1")]
    pairs, stats, _ = synchronize(c, d, slop_s=0.02)
    assert [(p.color, p.depth) for p in pairs] == [("c1", "d0"), ("c2", "d1")]
    assert stats.unmatched_color == 1 and _accounted(stats)


def test_duplicate_and_small_backwards_dropped_with_events():
    events: list[SyncEvent] = []
    s = StampSynchronizer(slop_s=0.02, on_event=events.append)
    out = []
    for i, t in enumerate(_stamps(6)):
        out += s.add_color(t, i)
        if i == 2:
            out += s.add_color(t, "dup")  # same stamp again
        if i == 3:
            out += s.add_color(t - 5 * MS, "late")  # slightly out of order
        out += s.add_depth(t + MS, i)
    out += s.flush()
    assert [p.color for p in out] == list(range(6))
    assert s.stats.duplicates == 1 and s.stats.backwards == 1
    assert {e.kind for e in events} == {"duplicate", "backwards"}
    assert all(e.stream == "color" for e in events)
    assert _accounted(s.stats)


def test_looping_bag_restarts_streams():
    events: list[SyncEvent] = []
    s = StampSynchronizer(slop_s=0.02, on_event=events.append)
    out = []
    stamps = _stamps(8)
    for loop in range(2):
        for i, t in enumerate(stamps):
            out += s.add_color(t, (loop, i))
            out += s.add_depth(t + 2 * MS, (loop, i))
    out += s.flush()
    assert len(out) == 16
    assert [p.color for p in out] == [p.depth for p in out]
    back = [e for e in events if e.kind == "backwards"]
    assert {e.stream for e in back} == {"color", "depth"} and s.stats.backwards == 2
    assert _accounted(s.stats)
    # pairs of each loop are in stamp order
    assert [p.stamp_ns for p in out[8:]] == stamps


def test_loop_with_straggler_reported():
    # colour loops before the last depth of the first loop arrives: that depth can no longer pair
    s = StampSynchronizer(slop_s=0.02)
    out = []
    st = _stamps(5)
    for t in st:
        out += s.add_color(t, "a")
        out += s.add_depth(t + MS, "a")
    out += s.add_color(st[0], "b")  # colour loops
    out += s.add_depth(st[-1] + 50 * MS, "straggler")  # old loop depth
    for t in st:
        if t != st[0]:
            out += s.add_color(t, "b")
        out += s.add_depth(t + MS, "b")
    out += s.flush()
    assert len(out) == 10
    assert [p.color for p in out] == [p.depth for p in out]
    assert s.stats.unmatched_depth == 1 and _accounted(s.stats)
    assert any("loop" in e.message for e in s.events if e.kind == "unmatched")


def test_silent_stream_bounded_queue():
    s = StampSynchronizer(slop_s=0.02, max_queue=5)
    for t in _stamps(20):
        assert s.add_color(t, None) == []
    assert s.pending() == (5, 0)
    assert s.stats.unmatched_color == 15
    assert any("queue full" in e.message for e in s.events)
    s.flush()
    assert s.stats.unmatched_color == 20 and s.pending() == (0, 0)


def test_streaming_latency_and_eager():
    s = StampSynchronizer(slop_s=0.02)
    assert s.add_color(0, "c0") == []
    # identical stamps pair at once
    assert len(s.add_depth(0, "d0")) == 1
    assert s.add_color(P, "c1") == []
    # depth 5 ms later: mutual-nearest needs the next colour to decide
    assert s.add_depth(P + 5 * MS, "d1") == []
    assert [p.color for p in s.add_color(2 * P, "c2")] == ["c1"]
    e = StampSynchronizer(slop_s=0.02, eager=True)
    e.add_color(0, "c0")
    assert len(e.add_depth(5 * MS, "d0")) == 1


def test_depth_first_and_reset():
    c = [(t + 4 * MS, i) for i, t in enumerate(_stamps(5))]
    d = [(t, i) for i, t in enumerate(_stamps(5))]
    pairs, stats, _ = synchronize(c, d)
    assert [(p.color, p.depth) for p in pairs] == [(i, i) for i in range(5)]
    assert all(p.dt_ns == -4 * MS for p in pairs)
    s = StampSynchronizer()
    s.add_color(0, 1)
    s.reset()
    assert s.pending() == (0, 0) and s.stats.color_in == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="slop_s"):
        StampSynchronizer(slop_s=-1)
    with pytest.raises(ValueError, match="gap_factor"):
        StampSynchronizer(gap_factor=1.0)


def test_summary_mentions_counts():
    _, stats, _ = synchronize([(0, 1), (P, 2)], [(0, 1)])
    text = stats.summary()
    assert "1 pairs" in text and "unmatched colour 1" in text
    assert stats.to_dict()["pairs"] == 1


@pytest.mark.parametrize("seed", range(5))
def test_random_streams_invariants(seed):
    rng = np.random.default_rng(seed)
    c = [(t + int(rng.normal(0, 8) * MS), ("c", i)) for i, t in enumerate(_stamps(80, 33 * MS))
         if rng.random() > 0.1]
    d = [(t + int(rng.normal(0, 8) * MS), ("d", i)) for i, t in enumerate(_stamps(80, 33 * MS))
         if rng.random() > 0.1]
    c.sort()
    d.sort()
    for eager in (False, True):
        pairs, stats, events = synchronize(c, d, slop_s=0.02, eager=eager)
        assert _accounted(stats)
        assert all(abs(p.dt_ns) <= 20 * MS for p in pairs)
        assert len({p.color for p in pairs}) == len(pairs) == len({p.depth for p in pairs})
        assert [p.stamp_ns for p in pairs] == sorted(p.stamp_ns for p in pairs)
        assert sum(e.kind == "unmatched" for e in events) == stats.unmatched_color + stats.unmatched_depth


def test_half_period_interleaving_keeps_every_pair():
    # Kinect stamps (TUM fr1_xyz): a colour frame almost midway between two depth frames; its nearest depth
    # pairs with the next colour, so the earlier depth is left to it (as TUM's associate.py does).
    d = [(994_164 * 1000, "d0"), (1_027_881 * 1000, "d1")]
    c = [(1_011_215 * 1000, "c0"), (1_043_227 * 1000, "c1")]
    pairs, stats, _ = synchronize(c, d, slop_s=0.02)
    assert [(p.color, p.depth) for p in pairs] == [("c0", "d0"), ("c1", "d1")]


def test_shared_tum_association_reproduced():
    import csv
    from pathlib import Path

    path = Path("/work/shared/data/real-rgbd/tum_freiburg1_xyz/frames.csv")
    if not path.exists():
        pytest.skip("shared real-rgbd data not available")
    rows = list(csv.DictReader(path.open()))
    c = [(round(float(r["colour_stamp_s"]) * 1e6) * 1000, i) for i, r in enumerate(rows)]
    d = [(round(float(r["depth_stamp_s"]) * 1e6) * 1000, i) for i, r in enumerate(rows)]
    pairs, stats, _ = synchronize(c, d, slop_s=0.02)
    assert len(pairs) == len(rows) == 792 and all(p.color == p.depth for p in pairs)


# ---------------------------------------------------------------------------------------------------
# Live streams with a bad stamp (issue 13.1): one wrong frame must not stop pairing.


def _live(order, ticks, fault=None, slop_s=0.02):
    """Feed ``ticks`` 10 Hz frames to an eager synchroniser, ``order`` per tick ("cd" colour first, "dc"
    depth first, or a callable tick -> order). ``fault(tick)`` -> list of (stream, stamp) sent before the
    tick's frames. Returns {tick index of the colour stamp: pair}."""
    s = StampSynchronizer(slop_s=slop_s, eager=True, max_queue=10)
    t0 = 1_000_000_000
    got = {}
    for i in range(ticks):
        for stream, stamp in (fault(i) if fault else []):
            for p in getattr(s, f"add_{stream}")(stamp, ("bad", stamp)):
                got.setdefault(p.color, p)
        o = order(i) if callable(order) else order
        for ch in o:
            stream = "color" if ch == "c" else "depth"
            for p in getattr(s, f"add_{stream}")(t0 + i * P, i):
                got.setdefault(p.color, p)
    return s, {k: v for k, v in got.items() if isinstance(k, int)}


@pytest.mark.parametrize("order", ["cd", "dc"])
@pytest.mark.parametrize("stream", ["color", "depth"])
@pytest.mark.parametrize("back_ms", [30, 50, 100, 1000, "zero"])
def test_one_late_frame_costs_at_most_that_frame(order, stream, back_ms):
    # Replaces the tick-10 frame of one stream with one stamped back_ms before the previous frame.
    s = StampSynchronizer(slop_s=0.02, eager=True, max_queue=10)
    t0 = 1_000_000_000
    got = set()
    for i in range(40):
        for ch in order:
            st = "color" if ch == "c" else "depth"
            stamp = t0 + i * P
            if i == 10 and st == stream:
                stamp = 0 if back_ms == "zero" else t0 + 9 * P - back_ms * MS
            got.update(p.color for p in getattr(s, f"add_{st}")(stamp, i))
    s.flush()
    missing = sorted(set(range(40)) - got)
    assert missing == [10], (missing, s.stats.summary())
    assert _accounted(s.stats)


@pytest.mark.parametrize("order", ["cd", "dc"])
@pytest.mark.parametrize("jump_s", [60, 3_400_000_000])
def test_one_frame_stamped_far_ahead_costs_little(order, jump_s):
    # A frame from the future (a +60 s jump, the year 2100) on depth, then normal stamps again.
    s, got = _live(order, 40, fault=lambda i: [("depth", 1_000_000_000 + jump_s * 1_000_000_000)] if i == 10
                   else [])
    assert set(range(13, 40)) <= set(got), sorted(set(range(40)) - set(got))


def test_looping_streams_resume_within_two_ticks_whatever_the_order():
    # Both streams loop back to the start (a looping bag), colour before depth in some ticks, after in others.
    s = StampSynchronizer(slop_s=0.02, eager=True)
    t0 = 1_000_000_000
    got = []
    rng = np.random.default_rng(3)
    for loop in range(3):
        for i in range(15):
            order = ("color", "depth") if rng.random() < 0.5 else ("depth", "color")
            for st in order:
                got += [(loop, p.color) for p in getattr(s, f"add_{st}")(t0 + i * P, i)]
    for loop in (1, 2):
        assert {i for lp, i in got if lp == loop} >= set(range(2, 15)), got


def _hostile_stamps():
    from hypothesis import strategies as st

    t0 = 1_000_000_000
    stamp = st.one_of(
        st.sampled_from([0, 1, t0, t0 - 1, 2**31 * 1_000_000_000 - 1, 4_102_444_800 * 1_000_000_000]),
        st.integers(min_value=0, max_value=2**63 - 1),
        st.integers(min_value=t0 - 3 * P, max_value=t0 + 30 * P),  # near the valid stamps that follow
    )
    return st.lists(st.tuples(st.sampled_from(["color", "depth"]), stamp), max_size=60)


def test_pairing_resumes_within_two_ticks_after_any_hostile_prefix():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(prefix=_hostile_stamps(), t_start=st.sampled_from([1_000_000_000, 50_000_000_000]),
           orders=st.lists(st.sampled_from(["cd", "dc"]), min_size=12, max_size=12), eager=st.booleans())
    def check(prefix, t_start, orders, eager):
        s = StampSynchronizer(slop_s=0.02, eager=eager, max_queue=10)
        for stream, stamp in prefix:
            getattr(s, f"add_{stream}")(stamp, "bad")
        got = []
        for i, order in enumerate(orders):
            for ch in order:
                stream = "color" if ch == "c" else "depth"
                got += [p.color for p in getattr(s, f"add_{stream}")(t_start + i * P, i)]
        got += [p.color for p in s.flush()]
        assert set(range(2, len(orders) - 1)) <= set(got), (sorted(got), s.stats.summary())
        assert _accounted(s.stats)

    check()
