"""Opening, closing, read-only opens, and one writer at a time."""

import subprocess
import sys

import pytest

import saedb


def test_context_manager_closes(tmp_path):
    path = tmp_path / "s.saedb"
    with saedb.open(path) as db:
        assert not db.closed and not db.read_only
        assert db.info()["documents"] == 0
    assert db.closed
    with pytest.raises(saedb.Error, match="closed"):
        db.sql("SHOW DICTIONARIES")
    db.close()  # twice is harmless
    # Closing released the writer's lock.
    saedb.open(path).close()


def test_results_outlive_the_database(store_path):
    with saedb.open(store_path, read_only=True) as db:
        res = db.top_activations("L2/7", k=3)
    assert len(res.rows()) == 3


def test_second_writer_is_refused_in_process(store_path):
    with saedb.open(store_path) as db:
        with pytest.raises(saedb.StoreLocked) as e:
            saedb.open(store_path)
        assert e.value.path == str(store_path)
        assert "read-only" in str(e.value)
        # Readers still open while the writer holds the store.
        with saedb.open(store_path, read_only=True) as reader:
            assert len(reader.top_activations("L2/7", k=2)) == 2
        assert len(db.top_activations("L2/7", k=2)) == 2


def test_second_writer_is_refused_across_processes(store_path):
    code = (
        "import saedb, sys\n"
        "try:\n"
        "    saedb.open(sys.argv[1])\n"
        "except saedb.StoreLocked as e:\n"
        "    print('locked', e.path)\n"
    )
    with saedb.open(store_path):
        out = subprocess.run([sys.executable, "-c", code, str(store_path)],
                             capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"locked {store_path}"


def test_read_only_open(store_path, tmp_path):
    with saedb.open(store_path, read_only=True) as db:
        assert db.read_only
        before = db.info()
        with pytest.raises(saedb.Error):
            db.ingest_tokens(store_path.parent / "nothing.jsonl", progress=False)
        assert db.info() == before
    with pytest.raises(saedb.Error):
        saedb.open(tmp_path / "missing.saedb", read_only=True)
    assert not (tmp_path / "missing.saedb").exists()


def test_not_a_store(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("hello")
    with pytest.raises(saedb.Error):
        saedb.open(f)
