"""The shard/gather helper both evaluation entry points use, with two processes simulated in one."""

from __future__ import annotations

import pytest

from showme_i2g.evaluation.distributed import map_in_shards, process_device, reorder_gathered, shard_range


def test_shards_are_accelerates_contiguous_split_and_cover_the_whole_in_order():
    # accelerate's split_between_processes: 10 items over 3 processes -> 4, 3, 3
    assert [list(shard_range(10, 3, i)) for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [len(shard_range(1, 2, i)) for i in range(2)] == [1, 0]  # more processes than items: an empty shard
    for total in range(0, 12):
        for processes in (1, 2, 3, 5):
            union = [i for p in range(processes) for i in shard_range(total, processes, p)]
            assert union == list(range(total))
    with pytest.raises(ValueError, match="does not exist"):
        shard_range(4, 2, 2)


def test_two_simulated_processes_gather_the_ordered_whole_whatever_the_arrival_order():
    items = [f"image{i}" for i in range(5)]
    calls: list[list[str]] = []

    def work(chunk: list[str]) -> list[str]:
        calls.append(chunk)
        return [item.upper() for item in chunk]

    class Sent(Exception):  # stops a rank at its gather, carrying what it sent
        pass

    def send(local):
        raise Sent(local)

    shards = {}
    for rank in (0, 1):
        with pytest.raises(Sent) as sent:
            map_in_shards(work, items, num_processes=2, process_index=rank, gather=send)
        shards[rank] = sent.value.args[0]

    def all_gather(local):  # a fake all-gather that delivers rank 1's shard before rank 0's
        assert local in shards.values()
        return shards[1] + shards[0]

    results = [map_in_shards(work, items, num_processes=2, process_index=r, gather=all_gather) for r in (0, 1)]
    result = results[0]
    assert results[1] == result
    assert calls[:2] == [["image0", "image1", "image2"], ["image3", "image4"]]  # each process saw only its shard
    assert shards[0] == [(0, "IMAGE0"), (1, "IMAGE1"), (2, "IMAGE2")]  # tagged with global indices
    assert result == [item.upper() for item in items]  # back in sample order although rank 1 arrived first


def test_one_process_runs_the_work_once_on_everything_without_gathering():
    def refuse(_):
        raise AssertionError("one process must not gather")

    seen = []
    assert map_in_shards(lambda c: seen.append(c) or [x * 2 for x in c], [1, 2, 3], num_processes=1,
                         process_index=0, gather=refuse) == [2, 4, 6]
    assert seen == [[1, 2, 3]]
    # without a launcher accelerate reports one process: same result, the requested device is kept
    assert map_in_shards(lambda c: [x + 1 for x in c], [1, 2]) == [2, 3]
    assert process_device("cpu") == "cpu" and process_device(None) is None


def test_lost_or_duplicated_results_are_refused():
    assert reorder_gathered([(1, "b"), (0, "a")], 2) == ["a", "b"]
    with pytest.raises(ValueError, match="miss sample 1"):
        reorder_gathered([(0, "a")], 2)
    with pytest.raises(ValueError, match="twice"):
        reorder_gathered([(0, "a"), (0, "a")], 2)
    with pytest.raises(ValueError, match="returned 1 results for 2 samples"):
        map_in_shards(lambda chunk: chunk[:1], [1, 2], num_processes=1, process_index=0)
