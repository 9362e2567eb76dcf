"""Dataset loaders: RecBole atomic files, the generic CSV format, the built-in ML-100K and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastesim.data import BUILTIN_DATASETS, DataFormatError, Dataset, builtin_path, load_dataset
from tastesim.data.atomic import load_atomic
from tastesim.data.generic import load_generic
from tastesim.data.titles import normalise_title

# Facts about tests/fixtures/ml-100k-slice (see its README.md): 29 users with exactly 20 ratings plus
# user 522 (30 ratings, among them item 543 "Misérables, Les"), and the 250 items they rated.
SLICE_RATINGS = 29 * 20 + 30
SLICE_USERS = 30
SLICE_ITEMS = 250


def _inter_lines(folder: Path) -> list[str]:
    return (folder / f"{folder.name}.inter").read_text(encoding="latin-1").splitlines()


def _write_lines(path: Path, lines: list[str], encoding: str = "latin-1") -> None:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def _set_field(line: str, index: int, value: str) -> str:
    cells = line.split("\t")
    cells[index] = value
    return "\t".join(cells)


# --------------------------------------------------------------------------------------------- atomic


def test_slice_sizes_and_columns(slice_dataset: Dataset) -> None:
    ds = slice_dataset
    assert ds.name == "ml-100k-slice"
    assert list(ds.interactions.columns) == ["user", "item", "rating", "timestamp"]
    assert list(ds.items.columns) == ["item", "title", "categories", "text"]
    assert len(ds.interactions) == SLICE_RATINGS
    assert ds.interactions["user"].nunique() == SLICE_USERS
    assert ds.n_items == SLICE_ITEMS
    assert ds.interactions["item"].nunique() == SLICE_ITEMS  # every item of the slice was rated
    assert ds.interactions["rating"].dtype == np.float64
    assert ds.interactions["timestamp"].dtype == np.int64
    assert ds.interactions["rating"].between(1, 5).all()
    assert ds.interactions.groupby("user").size().to_dict()["522"] == 30


def test_interactions_sorted_by_user_then_time(slice_dataset: Dataset) -> None:
    inter = slice_dataset.interactions
    expected = inter.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(inter, expected)
    assert list(inter.index) == list(range(len(inter)))


def test_slice_rows_read_as_written(slice_dataset: Dataset) -> None:
    inter = slice_dataset.interactions
    # File line 2 of the .inter: "166  346  1  886397596".
    row = inter[(inter["user"] == "166") & (inter["item"] == "346")]
    assert row[["rating", "timestamp"]].values.tolist() == [[1.0, 886397596]]
    # User 166's earliest ratings (by timestamp) are items 313 and 315, both at 886397478, kept in file order.
    first = inter[inter["user"] == "166"].head(3)
    assert first["item"].tolist() == ["313", "315", "288"]


def test_items_keep_file_order_and_fields(slice_dataset: Dataset) -> None:
    items = slice_dataset.items
    assert items["item"].head(3).tolist() == ["1", "4", "7"]
    toy = items.iloc[0]
    assert toy["title"] == "Toy Story"
    assert toy["categories"] == ("Animation", "Children's", "Comedy")
    # No descriptions file in the slice: the text is "title + genres".
    assert toy["text"] == "Toy Story. Genres: Animation, Children's, Comedy."
    assert slice_dataset.item_index(["1", "7", "4"]).tolist() == [0, 2, 1]
    assert "Sci-Fi" in slice_dataset.categories
    assert slice_dataset.categories == sorted(slice_dataset.categories)


def test_latin1_item_file_decoded(slice_dataset: Dataset, slice_dir: Path) -> None:
    raw = (slice_dir / "ml-100k-slice.item").read_bytes()
    assert b"Mis\xe9rables" in raw  # the fixture really is latin-1
    row = slice_dataset.items[slice_dataset.items["item"] == "543"].iloc[0]
    assert row["title"] == "Misérables, Les"
    assert row["categories"] == ("Drama", "Musical")
    assert row["text"] == "Misérables, Les. Genres: Drama, Musical."


def test_users_file_loaded_as_strings(slice_dataset: Dataset) -> None:
    users = slice_dataset.users
    assert users is not None
    assert list(users.columns) == ["user", "age", "gender", "occupation", "zip_code"]
    assert len(users) == SLICE_USERS
    first = users[users["user"] == "19"].iloc[0]
    assert first["zip_code"] == "02138"  # leading zero kept
    assert first["occupation"] == "librarian"


def test_restrict_users(slice_dataset: Dataset) -> None:
    sub = slice_dataset.restrict_users(["19", "522"])
    assert set(sub.interactions["user"]) == {"19", "522"}
    assert len(sub.interactions) == 20 + 30
    assert sub.n_items == SLICE_ITEMS
    assert sub.users is not None and set(sub.users["user"]) == {"19", "522"}


def test_load_atomic_directly_with_explicit_name(slice_copy: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "other-folder"
    slice_copy.rename(renamed)
    ds = load_atomic(renamed, "ml-100k-slice")
    assert ds.name == "ml-100k-slice"
    assert len(ds.interactions) == SLICE_RATINGS
    via_loader = load_dataset("ml-100k-slice", path=renamed)
    pd.testing.assert_frame_equal(via_loader.interactions, ds.interactions)


def test_missing_user_file_is_optional(slice_copy: Path) -> None:
    (slice_copy / "ml-100k-slice.user").unlink()
    ds = load_dataset(path=slice_copy)
    assert ds.users is None
    assert len(ds.interactions) == SLICE_RATINGS


# ------------------------------------------------------------------------------------------- built-in


def test_builtin_ml100k_sizes(ml100k: Dataset) -> None:
    assert "ml-100k" in BUILTIN_DATASETS
    assert ml100k.name == "ml-100k"
    assert len(ml100k.interactions) == 100_000
    assert ml100k.interactions["user"].nunique() == 943
    assert ml100k.n_items == 1682
    assert ml100k.users is not None and len(ml100k.users) == 943
    # The data README: 82.5 % of ratings are >= 3.
    assert (ml100k.interactions["rating"] >= 3).mean() == pytest.approx(0.825, abs=0.001)


def test_builtin_texts_come_from_descriptions(ml100k: Dataset) -> None:
    items = ml100k.items
    fallback = [
        text == f"{title}. Genres: {', '.join(cats)}."
        for title, cats, text in items[["title", "categories", "text"]].itertuples(index=False)
    ]
    with open(builtin_path("ml-100k") / "ml-100k.descriptions.csv", newline="", encoding="utf-8") as fh:
        described = {row["item_id"] for row in csv.DictReader(fh)}
    # Every item with a row in the descriptions file uses it (1,623 of 1,682 per the built-in README).
    assert len(fallback) - sum(fallback) == len(described) > 0.95 * ml100k.n_items
    assert {i for i, f in zip(items["item"], fallback, strict=True) if not f} == described
    toy = items[items["item"] == "1"].iloc[0]
    assert toy["text"].startswith("Toy Story is a computer-animated comedy film")
    # Description whitespace is collapsed ("GoldenEye  is" in the CSV) and angle brackets dropped.
    golden = items[items["item"] == "2"].iloc[0]
    assert golden["text"].startswith("GoldenEye is a James Bond film")
    assert not items["text"].str.contains("  |<|>", regex=True).any()


def test_builtin_accented_title_decoded(ml100k: Dataset) -> None:
    row = ml100k.items[ml100k.items["item"] == "543"].iloc[0]
    assert row["title"] == "Misérables, Les"


def test_unknown_builtin_name() -> None:
    with pytest.raises(ValueError, match="unknown built-in dataset 'ml-1b'"):
        load_dataset("ml-1b")
    with pytest.raises(ValueError, match="built-in"):
        load_dataset()


# -------------------------------------------------------------------------------------------- generic


def _write_generic(folder: Path, ds: Dataset, with_text: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ds.interactions.to_csv(folder / "interactions.csv", index=False)
    items = pd.DataFrame(
        {
            "item": ds.items["item"],
            "title": ds.items["title"],
            "categories": ["|".join(c) for c in ds.items["categories"]],
            "text": ds.items["text"] if with_text else "",
        }
    )
    items.to_csv(folder / "items.csv", index=False, encoding="utf-8")
    assert ds.users is not None
    ds.users.to_csv(folder / "users.csv", index=False)


def test_generic_format_matches_atomic(slice_dataset: Dataset, tmp_path: Path) -> None:
    folder = tmp_path / "generic-slice"
    _write_generic(folder, slice_dataset)
    ds = load_dataset(path=folder)  # auto-detected by interactions.csv
    assert ds.name == "generic-slice"
    pd.testing.assert_frame_equal(ds.interactions, slice_dataset.interactions)
    pd.testing.assert_frame_equal(ds.items, slice_dataset.items)
    assert ds.users is not None
    assert ds.users["user"].tolist() == slice_dataset.users["user"].tolist()
    assert ds.users["zip_code"].tolist() == slice_dataset.users["zip_code"].tolist()
    named = load_dataset("renamed", path=folder, fmt="generic")
    assert named.name == "renamed"


def test_generic_defaults_for_text_and_categories(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text(
        "item,title,categories,text\na, Alpha ,Drama|Comedy,\nb,Beta,,A described item.\n",
        encoding="utf-8",
    )
    (tmp_path / "interactions.csv").write_text(
        "user,item,rating,timestamp\nu2,b,2,20\nu1,b,4.5,30\nu1,a,3,10\n", encoding="utf-8"
    )
    ds = load_generic(tmp_path, "tiny")
    assert ds.items.to_dict("records") == [
        {
            "item": "a",
            "title": "Alpha",
            "categories": ("Drama", "Comedy"),
            "text": "Alpha. Categories: Drama, Comedy.",
        },
        {"item": "b", "title": "Beta", "categories": ("unknown",), "text": "A described item."},
    ]
    assert ds.interactions.values.tolist() == [
        ["u1", "a", 3.0, 10],
        ["u1", "b", 4.5, 30],
        ["u2", "b", 2.0, 20],
    ]
    assert ds.users is None


def test_generic_missing_column(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("item,title\na,Alpha\n", encoding="utf-8")
    (tmp_path / "interactions.csv").write_text("user,item,rating\nu1,a,3\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="missing column") as info:
        load_generic(tmp_path)
    assert info.value.path == tmp_path / "interactions.csv"
    assert "timestamp" in str(info.value)


def test_generic_duplicate_item(slice_dataset: Dataset, tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    _write_generic(folder, slice_dataset)
    lines = (folder / "items.csv").read_text(encoding="utf-8").splitlines()
    lines.insert(6, lines[3])  # header is line 1, so item row 3 (file line 4) reappears at file line 7
    (folder / "items.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    duplicated = next(csv.reader([lines[3]]))[0]
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=folder)
    assert info.value.path == folder / "items.csv"
    assert info.value.line == 7
    assert f"item {duplicated!r} appears twice" in str(info.value)


def test_generic_corrupt_rating(slice_dataset: Dataset, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    _write_generic(folder, slice_dataset)
    path = folder / "interactions.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[41].split(",")
    cells[2] = "five"
    lines[41] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"rating 'five' is not a number") as info:
        load_dataset(path=folder)
    assert info.value.line == 42
    assert str(info.value).startswith(f"{path}:42:")


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("line", "field", "value"), [(2, 2, "five"), (37, 2, "4..5"), (400, 3, "yesterday")])
def test_corrupt_inter_names_file_and_line(slice_copy: Path, line: int, field: int, value: str) -> None:
    path = slice_copy / "ml-100k-slice.inter"
    lines = _inter_lines(slice_copy)
    lines[line - 1] = _set_field(lines[line - 1], field, value)
    _write_lines(path, lines)
    column = "rating" if field == 2 else "timestamp"
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=slice_copy)
    err = info.value
    assert err.path == path
    assert err.line == line
    assert str(err) == f"{path}:{line}: {column} {value!r} is not a number"


def test_first_bad_line_is_reported(slice_copy: Path) -> None:
    lines = _inter_lines(slice_copy)
    lines[299] = _set_field(lines[299], 2, "bad")
    lines[99] = _set_field(lines[99], 2, "worse")
    _write_lines(slice_copy / "ml-100k-slice.inter", lines)
    with pytest.raises(DataFormatError, match="'worse'") as info:
        load_dataset(path=slice_copy)
    assert info.value.line == 100


def test_row_with_extra_field(slice_copy: Path) -> None:
    path = slice_copy / "ml-100k-slice.inter"
    lines = _inter_lines(slice_copy)
    lines[6] += "\t99"
    _write_lines(path, lines)
    with pytest.raises(DataFormatError, match="malformed row") as info:
        load_dataset(path=slice_copy)
    assert info.value.path == path
    assert info.value.line == 7


def test_line_number_counts_blank_lines(slice_copy: Path) -> None:
    lines = _inter_lines(slice_copy)
    lines[9] = _set_field(lines[9], 2, "x")  # file line 10
    lines.insert(4, "")  # a blank file line 5 pushes the bad row to file line 11
    _write_lines(slice_copy / "ml-100k-slice.inter", lines)
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=slice_copy)
    assert info.value.line == 11


def test_unknown_item_in_interactions(slice_copy: Path) -> None:
    path = slice_copy / "ml-100k-slice.inter"
    lines = _inter_lines(slice_copy)
    lines[24] = _set_field(lines[24], 1, "99999")
    lines[30] = _set_field(lines[30], 1, "88888")
    _write_lines(path, lines)
    with pytest.raises(DataFormatError, match=r"item '99999' is not in the items file \(2 such rows\)") as info:
        load_dataset(path=slice_copy)
    assert info.value.path == path
    assert info.value.line == 25


def test_duplicate_item(slice_copy: Path) -> None:
    path = slice_copy / "ml-100k-slice.item"
    lines = path.read_text(encoding="latin-1").splitlines()
    assert lines[2].startswith("4\tGet Shorty")
    lines.insert(10, lines[2])  # second "4" at file line 11
    _write_lines(path, lines)
    with pytest.raises(DataFormatError, match="item '4' appears twice") as info:
        load_dataset(path=slice_copy)
    assert info.value.path == path
    assert info.value.line == 11


@pytest.mark.parametrize("suffix", [".inter", ".item"])
def test_missing_file(slice_copy: Path, suffix: str) -> None:
    path = slice_copy / f"ml-100k-slice{suffix}"
    path.unlink()
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=slice_copy)
    assert info.value.path == path
    assert str(info.value) == f"{path}: file not found"


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="dataset folder not found"):
        load_dataset(path=tmp_path / "nowhere")


def test_missing_rating_column(slice_copy: Path) -> None:
    path = slice_copy / "ml-100k-slice.inter"
    lines = _inter_lines(slice_copy)
    lines[0] = lines[0].replace("rating:float", "stars_given:float")
    _write_lines(path, lines)
    with pytest.raises(DataFormatError, match="no rating column") as info:
        load_dataset(path=slice_copy)
    assert info.value.line == 1


def test_empty_interactions(slice_copy: Path) -> None:
    _write_lines(slice_copy / "ml-100k-slice.inter", _inter_lines(slice_copy)[:1])
    with pytest.raises(DataFormatError, match="no interactions"):
        load_dataset(path=slice_copy)


def test_load_from_current_folder(slice_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(slice_copy)
    ds = load_dataset(path=Path("."))
    assert ds.name == "ml-100k-slice"


# --------------------------------------------------------------------------------------------- titles


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Usual Suspects, The (1995)", "the usual suspects"),
        ("Toy Story (1995)", "toy story"),
        ("Toy Story", "toy story"),
        ("Few Good Men, A (1992)", "a few good men"),
        ("Affair to Remember, An", "an affair to remember"),
        ("  Some   Title ,  The  ", "the some title"),
        ("Misérables, Les", "misérables, les"),
        ("2001: A Space Odyssey (1968)", "2001: a space odyssey"),
        ("Theory (The)", "theory (the)"),
    ],
)
def test_normalise_title(raw: str, expected: str) -> None:
    assert normalise_title(raw) == expected
