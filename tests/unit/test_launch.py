import threading

import pytest

from sempos import launch


def test_rewrite_to_torchrun_only_for_multi_gpu():
    cmd = ["/opt/venv/bin/python", "-m", "sempos.stages.pretrain", "--seed", "0"]
    assert launch.rewrite(cmd, 1) == cmd
    assert launch.rewrite(cmd, 4) == ["/opt/venv/bin/python", "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node=4", "-m", "sempos.stages.pretrain", "--seed", "0"]
    with pytest.raises(SystemExit, match="python -m"):
        launch.rewrite(["bash", "x.sh"], 2)


def test_concurrent_jobs_get_disjoint_gpus(tmp_path):
    pool = ["0", "1", "2"]
    got = {}
    with launch.acquire(2, pool, tmp_path) as first:
        def other():
            with launch.acquire(1, pool, tmp_path, poll_s=0.01) as ids:
                got["second"] = ids

        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=5)
        assert not set(first) & set(got["second"])
    # With every GPU held, a request waits (and here times out) instead of sharing.
    with launch.acquire(3, pool, tmp_path):
        with pytest.raises(TimeoutError):
            with launch.acquire(1, pool, tmp_path, poll_s=0.01, timeout_s=0.1):
                pass


def test_too_many_gpus_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="only 1 are visible"):
        with launch.acquire(2, ["0"], tmp_path):
            pass


def test_dry_run_sets_visible_devices(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMPOS_VISIBLE_GPUS", "3,5")
    monkeypatch.setenv(launch.LOCK_DIR_ENV, str(tmp_path))
    assert launch.main(["--gpus", "2", "--dry-run", "--", "python", "-m", "sempos.stages.pretrain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CUDA_VISIBLE_DEVICES=3,5 python -m torch.distributed.run --standalone --nproc_per_node=2 "
                          "-m sempos.stages.pretrain")
