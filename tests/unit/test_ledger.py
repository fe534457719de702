"""The frame ledger: every frame the camera numbered is placed in a row or counted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ophyd_pvcam.acquisition import GAP, INTERRUPTED, MEMORY, TORN, WRITE, FrameLedger, Placement

NAN = math.nan


def arrive(ledger, number, lost=None):
    return ledger.arrive(number, number * 1e-3, number * 1e-3 + 5e-4, 1000.0 + number, lost)


def test_a_fly_places_frames_in_order_and_finds_gaps():
    ledger = FrameLedger(target=10)
    rows = [arrive(ledger, n) for n in (1, 2, 5, 6)]
    assert [r.row for r in rows] == [0, 1, 2, 3]
    assert list(ledger.numbers) == [1, 2, 5, 6]
    assert list(ledger.lost_before) == [0, 0, 2, 0]  # 3 and 4 never came
    assert ledger.lost.by_reason == {GAP: 2}
    assert ledger.lost.numbers() == "3-4"


def test_duplicates_and_frames_past_the_target_are_not_placed():
    ledger = FrameLedger(target=3)
    assert isinstance(arrive(ledger, 1), Placement)
    assert arrive(ledger, 1) == "duplicate"
    assert isinstance(arrive(ledger, 2), Placement)
    assert arrive(ledger, 5) == "beyond the target"
    assert ledger.complete
    assert ledger.lost.expanded() == [3]  # the target's last frame never came
    assert ledger.lost_after == 1  # ...and no later row can report it
    assert ledger.duplicates == 1 and len(ledger.numbers) == 2


def test_torn_frames_and_frames_without_memory_are_lost_with_their_reason():
    ledger = FrameLedger()
    arrive(ledger, 1)
    assert arrive(ledger, 2, lost=TORN) == TORN
    assert arrive(ledger, 3, lost=MEMORY) == MEMORY
    arrive(ledger, 4)
    assert ledger.lost.by_reason == {TORN: 1, MEMORY: 1}
    assert list(ledger.lost_before) == [0, 2]
    assert ledger.lost.ranges == [[2, 2, TORN], [3, 3, MEMORY]]


def test_a_step_point_takes_only_frames_triggered_for_it():
    """Frame n answers the n-th accepted software trigger, and only the point that
    trigger was sent for."""
    ledger = FrameLedger(batched=True, frames_per_point=2, by_trigger=True)
    ledger.want(0, 2)
    ledger.triggered()
    ledger.triggered()
    assert [arrive(ledger, n) for n in (1, 2)] == [Placement(0, 0), Placement(1, 0)]
    assert ledger.request.fulfilled
    ledger.triggered()  # a re-trigger sent for point 0, whose frame comes late ...
    ledger.want(1, 2)
    assert arrive(ledger, 3) == "unrequested"  # ... is never passed off as point 1's
    ledger.triggered()
    ledger.triggered()
    assert [arrive(ledger, n) for n in (4, 5)] == [Placement(2, 1), Placement(3, 1)]
    assert ledger.unrequested == 1
    assert arrive(ledger, 6) == "unrequested"  # no trigger() waits: not kept, counted
    assert ledger.unrequested == 2


def test_a_frame_lost_inside_a_point_is_replaced_not_padded():
    ledger = FrameLedger(batched=True, frames_per_point=3, by_trigger=True)
    ledger.want(0, 3)
    for _ in range(4):
        ledger.triggered()
    placed = [arrive(ledger, n) for n in (1, 2, 4)]  # 3 dropped on the way; 4 replaces it
    assert [p.row for p in placed] == [0, 1, 2]
    assert ledger.request.fulfilled
    assert ledger.lost.by_reason == {GAP: 1}


def test_abandoning_a_point_frees_its_rows_and_counts_its_frames():
    ledger = FrameLedger(batched=True, frames_per_point=2)
    ledger.want(0, 2)
    arrive(ledger, 1), arrive(ledger, 2)
    ledger.want(1, 2)
    arrive(ledger, 3)
    assert ledger.abandon(1) == 1
    assert list(ledger.numbers) == [1, 2]
    assert ledger.lost.by_reason == {INTERRUPTED: 1}
    ledger.want(1, 2)  # the RunEngine asks again after resuming
    assert [arrive(ledger, n).row for n in (4, 5)] == [2, 3]


def test_abandoning_a_point_whose_request_never_came_keeps_the_points_before():
    """A pause right after trigger(): the owner thread has not taken the new point's
    request yet; the request in the ledger is the previous, finished point's (found by
    the model-based test: point 0's rows were dropped)."""
    ledger = FrameLedger(batched=True, frames_per_point=2)
    ledger.want(0, 2)
    arrive(ledger, 1), arrive(ledger, 2)
    assert ledger.abandon(1) == 0
    assert list(ledger.numbers) == [1, 2] and ledger.lost.total == 0


def test_abandoning_a_point_with_all_its_frames_in_still_frees_its_rows():
    """Its frames were in but it was not finished (no Datum): the RunEngine takes it
    again, into the same rows."""
    ledger = FrameLedger(batched=True, frames_per_point=2)
    ledger.want(0, 2)
    arrive(ledger, 1), arrive(ledger, 2)
    assert ledger.abandon(0) == 2
    assert list(ledger.numbers) == [] and ledger.lost.by_reason == {INTERRUPTED: 2}


def test_rows_the_disk_refused_are_dropped_and_counted():
    ledger = FrameLedger()
    for n in range(1, 6):
        arrive(ledger, n)
    assert ledger.unwritten(3) == 2
    assert list(ledger.numbers) == [1, 2, 3]
    assert ledger.lost.by_reason == {WRITE: 2} and ledger.lost.numbers() == "4-5"


def test_a_new_request_before_the_last_is_answered_is_refused():
    ledger = FrameLedger(batched=True)
    ledger.want(0, 1)
    with pytest.raises(RuntimeError, match="not been answered"):
        ledger.want(1, 1)


def test_frames_map_to_wall_time_through_the_camera_clock():
    ledger = FrameLedger()
    ledger.arrive(1, 0.0, 0.010, now=500.0)
    ledger.arrive(2, 0.010, 0.020, now=500.5)  # delivered late: its time is the camera's
    assert list(ledger.times) == pytest.approx([500.0, 500.010])
    ledger.arrive(3, NAN, NAN, now=501.0)  # no camera clock: the arrival time
    assert ledger.times[2] == 501.0


def test_lost_numbers_are_shown_as_ranges():
    ledger = FrameLedger()
    for n in (1, 3, 4, 8, 20):
        arrive(ledger, n)
    assert ledger.lost.numbers() == "2, 5-7, 9-19"
    assert ledger.lost.total == 15


def test_a_new_acquisition_numbers_from_1_again_and_its_frames_take_the_next_rows():
    """A step scan restarts the camera (settings changed, a pause): numbering and
    triggers start over, rows do not."""
    ledger = FrameLedger(batched=True, frames_per_point=2, by_trigger=True)
    ledger.want(0, 2)
    ledger.triggered(), ledger.triggered()
    assert [arrive(ledger, n) for n in (1, 2)] == [Placement(0, 0), Placement(1, 0)]
    ledger.restart()
    ledger.want(1, 2)
    ledger.triggered(), ledger.triggered()
    assert [arrive(ledger, n) for n in (1, 2)] == [Placement(2, 1), Placement(3, 1)]
    assert list(ledger.numbers) == [1, 2, 1, 2]
    assert ledger.lost.total == 0 and ledger.duplicates == 0


def test_frame_times_never_run_back_when_a_paused_fly_goes_on():
    """The camera clock is placed on the wall clock by an acquisition's first arrival,
    which can only be late.  A first frame delivered 50 ms late (a loaded machine) puts
    the whole first acquisition 50 ms late; after a short pause the next acquisition's
    first frame, delivered at once, must still not be stamped before the last one (a
    paused fly scan's times ran back in a loaded CI run)."""
    ledger = FrameLedger(target=6)
    for number in (1, 2, 3):  # camera clock: eof = n ms; the first arrives 50 ms late
        ledger.arrive(number, number * 1e-3, number * 1e-3, 100.050 + number * 1e-3)
    ledger.go_on()  # paused for 1 ms, then a new acquisition, numbered from 1
    for number in (1, 2, 3):  # prompt this time: arrival = 100.004 + eof
        ledger.arrive(number, number * 1e-3, number * 1e-3, 100.004 + number * 1e-3)
    times = list(ledger.times)
    assert all(np.diff(times) >= 0), times
    assert times[3] == pytest.approx(times[2])  # no later than it must be
