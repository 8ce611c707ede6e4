"""The embedded directory store: versions, atomic replacement, locking, names, async."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import lichen.format.artifact as artifact
from lichen._errors import ConflictError, CorruptDataError, InvalidArgumentError, NotFoundError, StorageError
from lichen._home import default_home
from lichen.format import IndexSnapshot
from lichen.stores import IndexStore, LocalStore


def snapshot(name: str = "docs", n: int = 3, dim: int = 4, seed: int = 0) -> IndexSnapshot:
    rng = np.random.default_rng(seed)
    return IndexSnapshot(
        name=name,
        model_id="lichen-minilm",
        dimension=dim,
        ids=[f"d{i}" for i in range(n)],
        texts=[f"text {i} from seed {seed} 🌿" for i in range(n)],
        metadata=[{"i": i, "even": i % 2 == 0, "w": i / 2} for i in range(n)],
        matrix=rng.standard_normal((n, dim)).astype(np.float32),
    )


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "home")


def index_files(store: LocalStore) -> list[str]:
    return sorted(p.name for p in (store.root / "indexes").iterdir())


def parse_utc(stamp: str) -> datetime:
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp[:-1] + "+00:00")
    assert parsed.utcoffset().total_seconds() == 0
    return parsed


# ---- basics -------------------------------------------------------------------------------


def test_implements_the_store_protocol(store):
    for name, member in inspect.getmembers(IndexStore, inspect.isfunction):
        if name.startswith("_"):
            continue
        impl = getattr(store, name)
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(member), name
        assert list(inspect.signature(impl).parameters) == list(inspect.signature(member).parameters)[1:], name


def test_write_read_round_trip(store):
    snap = snapshot(n=5, dim=6)
    result = store.write(snap)
    assert (result.index_name, result.doc_count, result.status, result.version) == ("docs", 5, "completed", 1)
    assert len(result.job_id) == 32 and int(result.job_id, 16) >= 0
    back = store.read("docs")
    assert back.ids == snap.ids and back.texts == snap.texts and back.metadata == snap.metadata
    assert back.matrix.tobytes() == snap.matrix.tobytes()
    assert not back.matrix.flags.writeable  # a view of the memory-mapped file; the engine copies on first write
    assert back.version == 1 and back.model_id == "lichen-minilm" and back.dimension == 6
    assert snap.version == 0 and snap.created_at == ""  # the caller's snapshot is not modified


def test_empty_index_round_trips(store):
    empty = IndexSnapshot("empty", "custom", 0, [], [], [], np.zeros((0, 0), dtype=np.float32))
    store.write(empty)
    back = store.read("empty")
    assert back.doc_count == 0 and back.matrix.shape == (0, 0)
    assert store.get_info("empty").doc_count == 0


def test_versions_and_timestamps(store):
    first = store.write(snapshot(seed=1))
    info1 = store.get_info("docs")
    second = store.write(snapshot(n=7, seed=2))
    info2 = store.get_info("docs")
    assert (first.version, second.version) == (1, 2)
    assert (info1.version, info2.version, info2.doc_count) == (1, 2, 7)
    assert info2.created_at == info1.created_at == info1.updated_at
    assert parse_utc(info2.updated_at) > parse_utc(info1.updated_at)
    parse_utc(info2.created_at)
    back = store.read("docs")
    assert (back.version, back.created_at, back.updated_at) == (2, info1.created_at, info2.updated_at)


def test_get_info_reads_only_the_manifest(store, monkeypatch):
    store.write(snapshot(n=4, dim=3))

    def no_full_reads(*args, **kwargs):
        raise AssertionError("get_info must not decode the whole artifact")

    monkeypatch.setattr(artifact, "read_artifact", no_full_reads)
    info = store.get_info("docs")
    assert (info.name, info.doc_count, info.dimension, info.model_id, info.version) == ("docs", 4, 3, "lichen-minilm", 1)
    assert [i.name for i in store.list()] == ["docs"]


def test_list_and_delete(store):
    assert store.list() == []
    assert not store.root.exists()  # reading never creates the directory
    for name in ("b", "a", "C", "c"):
        store.write(snapshot(name))
    assert [i.name for i in store.list()] == ["C", "a", "b", "c"]
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert [i.name for i in store.list()] == ["C", "b", "c"]
    with pytest.raises(NotFoundError, match="'a'"):
        store.read("a")
    with pytest.raises(NotFoundError):
        store.get_info("a")
    assert store.delete("never-existed") is False
    # A deleted name can be created again, starting over at version 1.
    assert store.write(snapshot("a")).version == 1


def test_missing_index_is_not_found(store):
    with pytest.raises(NotFoundError) as excinfo:
        store.read("nope")
    assert isinstance(excinfo.value, KeyError)
    assert str(excinfo.value) == "index 'nope' not found"
    with pytest.raises(NotFoundError):
        store.get_info("nope")


def test_check_credentials_is_a_no_op(store):
    assert store.check_credentials() is None


def test_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("LICHEN_HOME", str(tmp_path / "x"))
    assert default_home() == tmp_path / "x"
    monkeypatch.setenv("LICHEN_HOME", "~/lichen-here")
    assert default_home() == Path.home() / "lichen-here"
    monkeypatch.delenv("LICHEN_HOME")
    import platformdirs

    assert default_home() == Path(platformdirs.user_data_dir("lichen", appauthor=False))


# ---- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "a/b", "/abs", "a\\b", "x" * 201, "a\nb", "tab\there", "nul\x00", "del\x7f", "c1\x85", ".", "..", "\u2028", 42, None]
)
def test_invalid_names_are_refused(store, name):
    for call in (store.read, store.get_info, store.delete, lambda n: store.write(snapshot(n))):
        with pytest.raises(InvalidArgumentError) as excinfo:
            call(name)
        assert isinstance(excinfo.value, ValueError)
    assert not store.root.exists()


@pytest.mark.parametrize(
    "name", ["my index", "Ünïcødé 🌿 名前", "x" * 200, "a.b", "..a", "CON", "with:colon*star?", "-", "_", "日本語" * 66]
)
def test_valid_names_round_trip(store, name):
    store.write(snapshot(name))
    assert store.read(name).name == name
    assert [i.name for i in store.list()] == [name]
    (file_name,) = index_files(store)
    assert file_name.isascii() and len(file_name.encode()) <= 255 and "/" not in file_name
    assert store.index_path(name).name == file_name
    assert store.delete(name)


def test_names_differing_only_in_case_are_distinct(store):
    store.write(snapshot("Docs", n=1))
    store.write(snapshot("docs", n=2))
    assert store.get_info("Docs").doc_count == 1
    assert store.get_info("docs").doc_count == 2
    assert len(index_files(store)) == 2


def test_a_file_holding_another_index_is_corrupt(store):
    store.write(snapshot("a"))
    store.index_path("b").write_bytes(store.index_path("a").read_bytes())
    with pytest.raises(CorruptDataError, match="holds index 'a', not 'b'"):
        store.read("b")
    with pytest.raises(CorruptDataError):
        store.get_info("b")


# ---- corruption -----------------------------------------------------------------------------


def test_corrupt_file_raises_corrupt_data(store):
    store.write(snapshot(n=10, dim=8))
    path = store.index_path("docs")
    data = bytearray(path.read_bytes())
    matrix = artifact.read_manifest(path).sections["matrix"]
    data[matrix.offset + matrix.length - 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="matrix section checksum mismatch"):
        store.read("docs")
    path.write_bytes(bytes(data[:-100]))
    with pytest.raises(CorruptDataError, match="truncated"):
        store.get_info("docs")
    with pytest.raises(CorruptDataError, match="truncated"):
        store.read("docs")


def test_list_skips_corrupt_files_with_a_warning(store, caplog):
    store.write(snapshot("good"))
    store.write(snapshot("bad"))
    store.index_path("bad").write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="lichen.stores.local"):
        assert [i.name for i in store.list()] == ["good"]
    assert "skipping unreadable index file" in caplog.text


def test_corrupt_index_can_be_replaced_unconditionally_only(store):
    store.write(snapshot())
    store.index_path("docs").write_bytes(b"garbage")
    with pytest.raises(CorruptDataError):
        store.write(snapshot(), expected_version=1)
    assert store.write(snapshot(seed=5)).version == 1
    assert store.read("docs").texts == snapshot(seed=5).texts


# ---- atomicity ------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands in for a KeyboardInterrupt or a killed thread mid-write."""


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), Crash("boom")])
def test_failure_mid_write_leaves_previous_version_intact(store, monkeypatch, exc):
    store.write(snapshot(seed=1))
    before = store.index_path("docs").read_bytes()
    real_write = artifact.write_artifact
    written = []

    def partial_then_fail(snap, fileobj):
        encoded = artifact.encode_artifact(snap)
        fileobj.write(encoded.chunks[0])
        fileobj.write(bytes(encoded.chunks[1])[:5])
        fileobj.flush()
        written.append(True)
        raise exc

    monkeypatch.setattr(artifact, "write_artifact", partial_then_fail)
    # A disk failure is a StorageError naming the file and the home; a crash propagates.
    with pytest.raises(StorageError if isinstance(exc, OSError) else Crash) as raised:
        store.write(snapshot(n=9, seed=2))
    if isinstance(exc, OSError):
        assert f"cannot write {store.index_path('docs')}: No space left on device" in str(raised.value)
        assert "LICHEN_HOME" in str(raised.value)
    assert written
    assert store.index_path("docs").read_bytes() == before
    back = store.read("docs")
    assert back.version == 1 and back.texts == snapshot(seed=1).texts
    assert index_files(store) == [store.index_path("docs").name]  # the temp file is gone

    monkeypatch.setattr(artifact, "write_artifact", real_write)
    assert store.write(snapshot(n=9, seed=2)).version == 2


def test_failed_rename_leaves_previous_version_intact(store, monkeypatch):
    store.write(snapshot(seed=1))
    before = store.index_path("docs").read_bytes()

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError, match="rename failed"):
        store.write(snapshot(seed=2))
    monkeypatch.undo()
    assert store.index_path("docs").read_bytes() == before
    assert index_files(store) == [store.index_path("docs").name]


def test_stray_temp_files_are_ignored_then_cleaned_up(store):
    store.write(snapshot("docs", seed=1))
    store.write(snapshot("other"))
    final = store.index_path("docs")
    # What a writer killed mid-write leaves behind: a partial, hidden temp file.
    stray = final.with_name(f".{final.name}.{'0' * 32}.tmp")
    stray.write_bytes(final.read_bytes()[:100])
    other_stray = store.index_path("other").with_name(f".{store.index_path('other').name}.{'1' * 32}.tmp")
    other_stray.write_bytes(b"partial")
    assert [i.name for i in store.list()] == ["docs", "other"]
    assert store.read("docs").texts == snapshot(seed=1).texts
    assert store.get_info("docs").version == 1

    assert store.write(snapshot("docs", seed=2)).version == 2
    assert not stray.exists()
    assert other_stray.exists()  # another index's temp file is that index's business
    store.delete("other")
    assert not other_stray.exists()


def test_readers_see_old_or_new_never_half(store):
    def version_content(version: int) -> IndexSnapshot:
        return snapshot(n=200, dim=64, seed=version - 1)

    store.write(version_content(1))
    stop = threading.Event()
    problems: list[object] = []
    seen: set[int] = set()

    def reader() -> None:
        while not stop.is_set():
            try:
                snap = store.read("docs")
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                problems.append(exc)
                return
            expected = version_content(snap.version)
            if snap.texts != expected.texts or snap.matrix.tobytes() != expected.matrix.tobytes():
                problems.append(f"version {snap.version} has another version's content")
            seen.add(snap.version)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for v in range(2, 12):
        store.write(version_content(v))
    stop.set()
    for t in threads:
        t.join()
    assert not problems
    assert seen and seen <= set(range(1, 12))


# ---- optimistic concurrency -------------------------------------------------------------------


def test_expected_version(store):
    assert store.write(snapshot(), expected_version=0).version == 1
    with pytest.raises(ConflictError, match="already exists"):
        store.write(snapshot(), expected_version=0)
    assert store.write(snapshot(), expected_version=1).version == 2
    with pytest.raises(ConflictError, match="at version 2, expected 1"):
        store.write(snapshot(seed=9), expected_version=1)
    assert store.read("docs").texts == snapshot().texts  # the refused write changed nothing
    with pytest.raises(ConflictError, match="does not exist"):
        store.write(snapshot("fresh"), expected_version=3)
    assert store.list()[0].name == "docs" and len(store.list()) == 1


@pytest.mark.parametrize("bad", [-1, "1", 1.0, True])
def test_expected_version_must_be_a_non_negative_int(store, bad):
    with pytest.raises(InvalidArgumentError, match="expected_version"):
        store.write(snapshot(), expected_version=bad)


def test_racing_threads_exactly_one_wins(store):
    store.write(snapshot())
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def contender(i: int) -> None:
        barrier.wait()
        try:
            store.write(snapshot(n=50, dim=32, seed=100 + i), expected_version=1)
            result = f"won:{i}"
        except ConflictError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("conflict") == n - 1
    winner = int(winners[0].split(":")[1])
    back = store.read("docs")
    assert back.version == 2 and back.texts == snapshot(n=50, seed=100 + winner).texts


def test_unconditional_writes_are_serialised(store):
    n, per_thread = 4, 5

    def writer(i: int) -> None:
        for j in range(per_thread):
            store.write(snapshot(n=20, dim=8, seed=i * 100 + j))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_info("docs").version == n * per_thread  # no lost version increments


def test_delete_racing_with_writes_stays_consistent(store):
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for j in range(15):
                store.write(snapshot(seed=j))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def deleter() -> None:
        try:
            for _ in range(15):
                store.delete("docs")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=writer), threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store.write(snapshot(seed=99))
    assert store.read("docs").texts == snapshot(seed=99).texts
    assert [p.name for p in (store.root / "indexes").iterdir()] == [store.index_path("docs").name]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_racing_processes_exactly_one_wins(store, tmp_path):
    store.write(snapshot())
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        import numpy as np
        from lichen.format import IndexSnapshot
        from lichen.stores import LocalStore
        from lichen._errors import ConflictError
        i = int(sys.argv[1])
        store = LocalStore({str(store.root)!r})
        snap = IndexSnapshot("docs", "lichen-minilm", 16, [f"p{{i}}-{{k}}" for k in range(500)],
                             ["t"] * 500, [{{}}] * 500, np.full((500, 16), i, dtype=np.float32))
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        try:
            store.write(snap, expected_version=1)
            print("won", i)
        except ConflictError:
            print("conflict")
        """
    )
    src = Path(artifact.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE, text=True, env=env)
        for i in range(4)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    winners = [o for o in outputs if o.startswith("won")]
    assert len(winners) == 1 and outputs.count("conflict") == 3, outputs
    winner = int(winners[0].split()[1])
    back = store.read("docs")
    assert back.version == 2 and back.ids[0] == f"p{winner}-0" and float(back.matrix[0, 0]) == winner


# ---- async twins ------------------------------------------------------------------------------


async def test_async_twins(store):
    await store.acheck_credentials()
    result = await store.awrite(snapshot(n=2))
    assert result.version == 1
    assert (await store.aget_info("docs")).doc_count == 2
    assert (await store.aread("docs")).ids == ["d0", "d1"]
    assert [i.name for i in await store.alist()] == ["docs"]
    with pytest.raises(ConflictError):
        await store.awrite(snapshot(), expected_version=0)
    assert await store.adelete("docs") is True
    with pytest.raises(NotFoundError):
        await store.aread("docs")
    assert await store.alist() == []


# ---- an unusable home ---------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", ["home", "indexes"])
def test_an_unusable_home_is_a_storage_error_when_the_client_opens_it(tmp_path, monkeypatch, blocked):
    """A LICHEN_HOME that is a file (or holds a file where ``indexes/`` goes) is reported
    by ``Client()``, naming the path and LICHEN_HOME, not by a raw OSError at push time."""
    from lichen import Client

    home = tmp_path / "home"
    if blocked == "home":
        home.write_text("not a directory")
        culprit = home
    else:
        home.mkdir()
        culprit = home / "indexes"
        culprit.write_text("not a directory")
    monkeypatch.setenv("LICHEN_HOME", str(home))
    for open_client in (Client, lambda: Client(home=home)):
        with pytest.raises(StorageError, match=f"{culprit} is not a directory") as raised:
            open_client()
        assert "LICHEN_HOME" in str(raised.value)
    assert culprit.read_text() == "not a directory"  # nothing was touched


def test_every_operation_on_an_unusable_directory_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = LocalStore(blocker / "home")
    operations = {
        "write": lambda: store.write(snapshot()),
        "read": lambda: store.read("docs"),
        "get_info": lambda: store.get_info("docs"),
        "list": store.list,
        "delete": lambda: store.delete("docs"),
    }
    for name, operation in operations.items():
        with pytest.raises(StorageError, match=r"cannot \w+ .*Not a directory.*LICHEN_HOME"):
            operation()
    assert blocker.read_text() == "x" and list(tmp_path.iterdir()) == [blocker]


# The scenario runs in a subprocess, so the same code can run without root's overrides or in a
# mount namespace: root ignores file permissions (CAP_DAC_OVERRIDE), and CI runs as root.
READ_ONLY_HOME_SCENARIO = textwrap.dedent(
    """
    import json, sys, warnings
    from pathlib import Path
    from lichen import Client, DocumentInfo
    from lichen.stores import LocalStore

    phase, home = sys.argv[1], Path(sys.argv[2])
    if phase == "create":
        Client(home=home).create_index_sync(
            "faqs", [DocumentInfo(id="a", text="a", embedding=[1.0, 0.0])], model_id="custom"
        )
        raise SystemExit(0)
    try:
        (home / "probe").touch()
    except OSError:
        pass
    else:
        (home / "probe").unlink()
        print(json.dumps({"binds": False}))
        raise SystemExit(0)
    path = LocalStore(home).index_path("faqs")
    before = path.read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = Client(home=home)
    seen = {"binds": True, "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}
    seen["loaded"] = client.load_index_sync("faqs").doc_count
    session = client.session_sync("faqs")
    session.add_docs_sync([DocumentInfo(id="b", text="b", embedding=[0.0, 1.0])])
    try:
        session.push_index_sync()
        seen["push"] = "pushed"
    except Exception as exc:
        seen["push"] = f"{type(exc).__name__}: {exc}"
    seen["unchanged"] = path.read_bytes() == before
    print(json.dumps(seen))
    """
)


def _scenario(phase: str, home: Path, *, wrap: list[str] = (), **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*wrap, sys.executable, "-c", READ_ONLY_HOME_SCENARIO, phase, str(home)],
        capture_output=True, text=True, timeout=120, cwd=home.parent,
        env={**os.environ, "LICHEN_HOME": str(home)}, **popen,
    )


# What lets root write where file permissions say no: dropped from the bounding set (and
# the inheritable set), a process running as root no longer has them after exec.
_PERMISSION_OVERRIDES = "-dac_override,-dac_read_search,-fowner"


@contextlib.contextmanager
def _read_only_by_permissions(tmp_path: Path) -> Iterator[tuple[Path, dict]]:
    """A home made read-only with ``chmod 555`` (home, ``indexes/``, ``locks/``), and the
    ``subprocess`` arguments of a process those permissions bind: this process's user,
    or, as root, root without the capabilities that override file permissions
    (``setpriv``; switching to an unprivileged user instead would need an interpreter that
    user can reach, and CI's lives under root's home)."""
    if os.name != "posix":
        pytest.skip("no POSIX permissions on this platform")
    popen: dict = {}
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and there is no `setpriv` to drop CAP_DAC_OVERRIDE for the scenario")
        popen["wrap"] = [setpriv, f"--inh-caps={_PERMISSION_OVERRIDES}", f"--bounding-set={_PERMISSION_OVERRIDES}", "--"]
        probe = subprocess.run([*popen["wrap"], "true"], capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:  # e.g. no CAP_SETPCAP in this container
            pytest.skip(f"running as root and `setpriv` cannot drop CAP_DAC_OVERRIDE: {probe.stderr.strip()}")
    home = tmp_path / "home"
    directories = (home, home / "indexes", home / "locks")
    created = _scenario("create", home)
    assert created.returncode == 0, created.stderr
    for directory in directories:
        directory.chmod(0o555)
    try:
        yield home, popen
    finally:
        for directory in directories:
            directory.chmod(0o755)


@contextlib.contextmanager
def _read_only_by_mount(tmp_path: Path) -> Iterator[tuple[Path, dict]]:
    """A home bind-mounted read-only onto itself in a private mount namespace (which binds
    root too), and the ``subprocess`` arguments that run a child inside it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("mount namespaces are Linux-only: the permissions variant is the other way")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no `unshare` command for a private mount namespace")
    home = tmp_path / "home"
    created = _scenario("create", home)
    assert created.returncode == 0, created.stderr
    wrap = [unshare, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        wrap.insert(1, "--map-root-user")  # an unprivileged user namespace, where allowed
    wrap += ["sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"', "sh", str(home)]
    probe = subprocess.run([*wrap, "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount the home read-only in a private mount namespace: {probe.stderr.strip()}")
    yield home, {"wrap": wrap}


@pytest.mark.parametrize("mechanism", ["permissions", "read-only mount"])
def test_a_read_only_home_loads_but_refuses_pushes_clearly(tmp_path, mechanism):
    """README: a read-only ``LICHEN_HOME`` is reported with a warning; loading works,
    pushing does not (``StorageError`` naming LICHEN_HOME) and leaves the stored index as
    it was. Both ways of making it read-only bind root, so this runs in CI as well."""
    read_only = _read_only_by_permissions if mechanism == "permissions" else _read_only_by_mount
    with read_only(tmp_path) as (home, popen):
        before = LocalStore(home).index_path("faqs").read_bytes()
        files = sorted(p.relative_to(home) for p in home.rglob("*"))
        checked = _scenario("check", home, **popen)
        assert checked.returncode == 0, checked.stderr
        seen = json.loads(checked.stdout.strip().splitlines()[-1])
        if not seen["binds"]:
            why = "root kept CAP_DAC_OVERRIDE: setpriv could not drop it" if os.geteuid() == 0 else "capabilities?"
            pytest.skip(f"{mechanism}: the home stayed writable for the scenario's process ({why})")
        assert len(seen["warnings"]) == 1, seen
        assert seen["warnings"][0].startswith("RuntimeWarning:") and "not writable" in seen["warnings"][0], seen
        assert seen["loaded"] == 1, seen
        assert seen["push"].startswith("StorageError:") and "LICHEN_HOME" in seen["push"], seen
        assert seen["unchanged"], seen
        assert LocalStore(home).index_path("faqs").read_bytes() == before
        assert sorted(p.relative_to(home) for p in home.rglob("*")) == files
