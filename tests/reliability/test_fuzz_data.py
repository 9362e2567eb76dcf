"""Malformed data folders in every format the loaders read: each loads, or fails with one
:class:`DataFormatError` naming the file (and the line where one is to blame); never another exception, a
hang or a memory blow-up. The starting folders are the small real slices in ``tests/fixtures`` (ML-100K
atomic files, Amazon Musical Instruments and Amazon 2018 reviews, Yelp), and the generic CSV format written
from the ML-100K slice. Through the CLI, a malformed folder is one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import CLI
from tastesim.data import DataFormatError, load_dataset

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCES = {
    "atomic": FIXTURES / "ml-100k-slice",
    "amazon-csv": FIXTURES / "amazon-mi-slice",
    "amazon-jsonl": FIXTURES / "amazon-2018-slice",
    "yelp": FIXTURES / "yelp-slice",
}
TEN_MB = 10 * 1024 * 1024
GARBAGE = [b"\x00\x01\x02", b"\t\t\t\t\t\t", b",,,,,,,,", b'"unclosed,quote', b'{"json": [1, 2']


def _generic(folder: Path) -> Path:
    """The ML-100K slice in the generic CSV format, with a reviews.csv."""
    data = load_dataset(path=SOURCES["atomic"])
    folder.mkdir(parents=True, exist_ok=True)
    inter = data.interactions[["user", "item", "rating", "timestamp"]]
    inter.to_csv(folder / "interactions.csv", index=False)
    items = data.items.assign(categories=data.items["categories"].map("|".join))
    items[["item", "title", "categories", "text"]].to_csv(folder / "items.csv", index=False)
    inter.head(40).assign(text="great fun, a bit long")[["user", "item", "text"]].to_csv(
        folder / "reviews.csv", index=False
    )
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {**SOURCES, "generic": _generic(tmp_path_factory.mktemp("generic"))}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _mutate(path: Path, kind: str, at: float, pick: Callable[[list], object]) -> None:
    """Damage one file of a folder in one way; ``at`` (0-1) picks the line, ``pick`` any other choice."""
    lines = _lines(path)
    row = min(int(at * len(lines)), max(len(lines) - 1, 0))
    if kind == "drop column" and lines:
        sep = b"\t" if b"\t" in lines[0] else b","
        cells = [line.rstrip(b"\r\n").split(sep) for line in lines]
        col = pick(list(range(len(cells[0]))))
        lines = [sep.join(c[:col] + c[col + 1 :]) + b"\n" for c in cells]
    elif kind == "extra column" and lines:
        sep = b"\t" if b"\t" in lines[0] else b","
        lines = [line.rstrip(b"\r\n") + sep + b"extra" + b"\n" for line in lines]
    elif kind == "non-UTF-8 bytes":
        lines.insert(row, pick([b"\xff\xfe\xfa\n", b"caf\xe9,\x80\x81\n", b"\xc3\x28\n"]))
    elif kind == "empty file":
        lines = []
    elif kind == "header only":
        lines = lines[:1]
    elif kind == "duplicate line" and lines:
        lines.insert(row, lines[row])
    elif kind == "unknown ids" and len(lines) > 1:  # interactions: an unknown item; other files: a new id
        row, sep = max(row, 1), b"\t" if b"\t" in lines[0] else b","
        cells = lines[row].split(sep)
        cells[1 if "inter" in path.name and len(cells) > 1 else 0] = b"zz-unknown"
        lines[row] = sep.join(cells)
    elif kind == "10 MB line":
        lines.insert(row, b"x" * TEN_MB + b"\n")
    elif kind == "truncated":
        raw = b"".join(lines)
        lines = [raw[: int(at * len(raw))]]
    elif kind == "garbage line":
        lines.insert(row, pick(GARBAGE) + b"\n")
    elif kind == "bad number" and len(lines) > 1:
        row = max(row, 1)
        lines[row] = lines[row].replace(b"5", b"five").replace(b"4", b"NaN")
    elif kind == "delete":
        path.unlink()
        return
    path.write_bytes(b"".join(lines))


KINDS = [
    "drop column",
    "extra column",
    "non-UTF-8 bytes",
    "empty file",
    "header only",
    "duplicate line",
    "unknown ids",
    "10 MB line",
    "truncated",
    "garbage line",
    "bad number",
    "delete",
]


def _load_within_limits(folder: Path) -> None:
    """Load ``folder``; the loader may allocate at most 400 MB more than the file sizes suggest."""
    tracemalloc.start()
    try:
        load_dataset(path=folder)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 400 * 1024 * 1024, f"loading took {peak / 2**20:.0f} MB"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(["atomic", "amazon-csv", "amazon-jsonl", "yelp", "generic"]),
    damage=st.tuples(st.lists(st.sampled_from(KINDS), min_size=1, max_size=2), st.floats(0, 1)),
    data=st.data(),
)
def test_a_damaged_data_folder_loads_or_names_its_file(
    sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, fmt: str, damage: tuple, data: st.DataObject
) -> None:
    kinds, at = damage
    folder = tmp_path_factory.mktemp("damaged")
    shutil.rmtree(folder)
    shutil.copytree(sources[fmt], folder, ignore=shutil.ignore_patterns("README.md"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for kind in kinds:
        files = [p for p in files if p.exists()]
        if not files:
            break
        _mutate(data.draw(st.sampled_from(files)), kind, at, lambda options: data.draw(st.sampled_from(options)))
    try:
        _load_within_limits(folder)
    except DataFormatError as err:
        message = str(err)
        assert str(folder) in message, message  # names the file
        assert "\n" not in message.strip() and len(message) < 2000, message  # one short line


def test_a_memory_limited_process_loads_a_10_mb_line_without_blowing_up(tmp_path: Path) -> None:
    """The 10 MB single line, under a 3 GiB address-space limit in a child process: one message, exit 2."""
    folder = tmp_path / "data"
    shutil.copytree(SOURCES["atomic"], folder)
    inter = folder / "ml-100k-slice.inter"
    inter.write_bytes(_lines(inter)[0] + b"1\t" + b"9" * TEN_MB + b"\t5\t1\n" + b"".join(_lines(inter)[1:]))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    _assert_one_error_naming(folder, tmp_path, "ml-100k-slice.inter", preexec_fn=limit)


@pytest.mark.parametrize("kind", ["non-UTF-8 bytes", "drop column", "unknown ids", "bad number", "empty file"])
def test_the_cli_gives_one_line_and_exit_2_for_a_damaged_generic_folder(
    sources: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / "data"
    shutil.copytree(sources["generic"], folder)
    _mutate(folder / "interactions.csv", kind, 0.5, lambda options: options[0])
    _assert_one_error_naming(folder, tmp_path, "interactions.csv")


def _assert_one_error_naming(folder: Path, tmp_path: Path, file: str, **popen: object) -> None:
    """`tastesim run` on a scenario reading ``folder``: exit code 2 and one error line naming ``file``."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"dataset: {{path: {folder}}}\nsteps: 1\n", encoding="utf-8")
    done = subprocess.run(
        [*CLI, "run", str(scenario), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **popen,  # type: ignore[arg-type]
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and file in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
