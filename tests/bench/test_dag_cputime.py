"""The idle-time replay of bench/dag_cputime.py: list scheduling of a small DAG, computed by hand."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("dag_cputime", REPO / "bench" / "dag_cputime.py")
dag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dag)


def test_replay_by_hand():
    jobs = [{"name": "a", "deps": [], "seconds": 2.0}, {"name": "b", "deps": ["a"], "seconds": 5.0},
            {"name": "c", "deps": ["a"], "seconds": 3.0}, {"name": "d", "deps": ["a"], "seconds": 1.0},
            {"name": "e", "deps": ["b", "c", "d"], "seconds": 1.0}]
    # 2 workers: a [0,2]; b [2,7] and c [2,5]; d [5,6]; e after b: [7,8]
    assert dag.replay(jobs, 2) == 8.0
    assert dag.replay(jobs, 1) == 12.0  # the sum
    assert dag.replay(jobs, 3) == 8.0  # the critical path a-b-e
