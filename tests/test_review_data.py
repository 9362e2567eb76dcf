"""Review datasets: the Amazon (2014 CSV, 2018 JSON lines), Yelp and generic ``reviews.csv`` formats on small
real slices; ``format: auto``; errors naming the file and line; and the training view, through which no
held-out review reaches an item's description, the LLM's prompts or a profile."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastesim.analysis.llm_analyser import LLMAnalyser, LLMAnalyserSettings, analyse_with_config, analysis_reviews
from tastesim.data import DataFormatError, detect_format, load_dataset, split_by_time, training_view
from tastesim.llm.backend import LLMReply
from tastesim.llm.cache import ReplyCache
from tastesim.scenario import AnalyserConfig, DatasetConfig, Scenario

FIXTURES = Path(__file__).parent / "fixtures"
AMAZON = FIXTURES / "amazon-mi-slice"  # 10 reviewers of Amazon Musical Instruments 5-core (2014, CSV)
AMAZON_2018 = FIXTURES / "amazon-2018-slice"  # 8 reviewers of Amazon Fashion 5-core (2018, JSON lines)
YELP = FIXTURES / "yelp-slice"  # 10 reviewers of the Yelp 2013 Phoenix sample


@pytest.mark.parametrize(
    ("folder", "expected"),
    [(AMAZON, "amazon"), (AMAZON_2018, "amazon"), (YELP, "yelp"), (FIXTURES / "ml-100k-slice", "atomic")],
)
def test_auto_recognises_each_format_from_the_files(folder: Path, expected: str) -> None:
    assert detect_format(folder) == expected
    assert Scenario(dataset=DatasetConfig(path=folder)).dataset.format == "auto"


def test_an_unknown_folder_says_what_each_format_needs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"interactions\.csv.*NAME\.inter.*Amazon.*Yelp"):
        load_dataset(path=tmp_path)


def test_amazon_csv_reviews_are_ratings_and_metadata_describes_items() -> None:
    raw = pd.read_csv(AMAZON / "Musical_instruments_reviews.csv", dtype=str, keep_default_na=False)
    meta = pd.read_csv(AMAZON / "partial_meta_product_metadata.csv", dtype=str, keep_default_na=False)
    data = load_dataset(path=AMAZON)
    assert len(data.interactions) == len(raw) and data.n_items == raw["asin"].nunique()
    assert data.interactions["user"].nunique() == raw["reviewerID"].nunique()
    assert set(data.interactions["rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(data.reviews) == (raw["reviewText"].str.strip() != "").sum()
    described = set(meta["product_id"][meta["description"].str.strip() != ""])
    assert data.undescribed == set(raw["asin"]) - described
    item = sorted(described)[0]
    row = data.items.set_index("item").loc[item]
    title = meta.set_index("product_id").loc[item, "title"]
    assert row["title"] == title and row["text"].startswith(meta.set_index("product_id").loc[item, "description"][:40])
    assert set(data.items["categories"].map(lambda c: c[0])) == {"Musical Instruments"}  # one category per file


def test_amazon_2018_json_lines_count_a_review_repeated_on_style_variants_once() -> None:
    lines = (AMAZON_2018 / "AMAZON_FASHION_5.jsonl").read_text(encoding="utf-8").splitlines()
    rows = pd.read_json(AMAZON_2018 / "AMAZON_FASHION_5.jsonl", lines=True, dtype={"asin": str})
    data = load_dataset(path=AMAZON_2018)
    assert len(rows) == len(lines) > len(data.interactions)  # the variants repeat reviews
    assert len(data.interactions) == len(rows.drop_duplicates(["reviewerID", "asin"]))
    assert not data.interactions.duplicated(["user", "item"]).any()
    assert data.undescribed == set(data.items["item"])  # no metadata file: every item described from reviews


def test_yelp_businesses_are_items_titled_by_name_with_their_categories() -> None:
    raw = pd.read_csv(YELP / "yelp.csv", dtype=str, keep_default_na=False)
    business = pd.read_csv(YELP / "yelp_training_set_business.csv", dtype=str, keep_default_na=False)
    data = load_dataset(path=YELP)
    assert len(data.interactions) == len(raw) and data.n_items == raw["business_id"].nunique()
    one = business.iloc[0]
    row = data.items.set_index("item").loc[one["business_id"]]
    assert row["title"].startswith(one["name"].strip())
    assert list(row["categories"]) == [c.strip() for c in one["categories"].split(",") if c.strip()]
    date = pd.Timestamp(raw["date"].iloc[0]).timestamp()
    first = data.interactions[(data.interactions["user"] == raw["user_id"].iloc[0])]
    assert date in set(first["timestamp"].astype(float))


def _line_of_record(path: Path, row: int) -> int:
    """The line that record ``row`` (0-based, header excluded) starts on, as a CSV reader counts it."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        start = reader.line_num + 1
        for index, _ in enumerate(reader):
            if index == row:
                return start
            start = reader.line_num + 1
    raise AssertionError("no such row")


def test_a_bad_rating_is_reported_with_the_file_and_the_line_its_record_starts_on(tmp_path: Path) -> None:
    folder = tmp_path / "yelp"
    shutil.copytree(YELP, folder)
    path = folder / "yelp.csv"
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    row = int(np.flatnonzero(raw["text"].str.contains("\n"))[3]) + 1  # after several multi-line texts
    raw.loc[row, "stars"] = "five"
    raw.to_csv(path, index=False)
    expected = _line_of_record(path, row)
    assert expected > row + 2  # line numbers are not row numbers here
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=folder)
    assert info.value.path == path and info.value.line == expected
    assert "'five'" in str(info.value)


def test_a_broken_json_line_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "fashion"
    shutil.copytree(AMAZON_2018, folder)
    path = folder / "AMAZON_FASHION_5.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[6] = lines[6][:40]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=folder, fmt="amazon")
    assert info.value.path == path and info.value.line == 7


@pytest.fixture
def generic_with_reviews(tmp_path: Path) -> Path:
    """The Amazon slice rewritten in the generic format, with ``reviews.csv`` and no item texts."""
    data = load_dataset(path=AMAZON)
    folder = tmp_path / "generic"
    folder.mkdir()
    data.interactions.to_csv(folder / "interactions.csv", index=False)
    data.items.assign(categories=data.items["categories"].map("|".join), text="").to_csv(
        folder / "items.csv", index=False
    )
    data.reviews[["user", "item", "text", "summary"]].to_csv(folder / "reviews.csv", index=False)
    return folder


def test_generic_reviews_take_rating_and_time_from_their_interaction(generic_with_reviews: Path) -> None:
    data = load_dataset(path=generic_with_reviews)
    amazon = load_dataset(path=AMAZON)
    assert detect_format(generic_with_reviews) == "generic"
    merged = data.reviews.merge(amazon.interactions, on=["user", "item"], suffixes=("", "_real"))
    assert len(merged) == len(amazon.reviews)
    assert (merged["rating"] == merged["rating_real"]).all() and (merged["timestamp"] == merged["timestamp_real"]).all()
    assert data.undescribed == set(data.items["item"])


def test_a_review_of_no_rating_is_an_error_naming_its_line(generic_with_reviews: Path) -> None:
    path = generic_with_reviews / "reviews.csv"
    reviews = pd.read_csv(path, dtype=str, keep_default_na=False)
    reviews.loc[4, "user"] = "nobody"
    reviews.to_csv(path, index=False)
    with pytest.raises(DataFormatError) as info:
        load_dataset(path=generic_with_reviews)
    assert info.value.path == path and info.value.line == _line_of_record(path, 4)


# -- no held-out review may inform a reason ------------------------------------------------------------


def _held_out_texts(data, fraction: float) -> tuple[set[str], set[str]]:
    """Distinctive snippets of the held-out and of the training reviews (a reviewer who pasted one text
    on two products, one of each part, has it on the training side)."""
    is_train = split_by_time(data.interactions, fraction).to_numpy()
    held = set(map(tuple, data.interactions.loc[~is_train, ["user", "item"]].to_numpy()))
    keys = list(map(tuple, data.reviews[["user", "item"]].to_numpy()))
    mask = np.array([k in held for k in keys])
    snippet = data.reviews["text"].map(lambda t: " ".join(t.split())[:60])
    trained = set(snippet[~mask])
    return {s for s in snippet[mask] if not any(s[:40] in t or t[:40] in s for t in trained)}, trained


class RecordingBackend:
    """Test double of LLMBackend: records every prompt, answers in the few-shot line format."""

    name = "llamacpp"
    model = "recording"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, prompt: str, **options: object) -> LLMReply:
        self.prompts.append(" ".join(prompt.split()))
        return LLMReply(" solid build | build\nDislike: weak strings | strings\n", 10, 10, 0.0)


@pytest.mark.parametrize("folder", [AMAZON, YELP])
def test_held_out_reviews_never_reach_a_description_a_prompt_or_a_profile(folder: Path, tmp_path: Path) -> None:
    fraction = 0.8
    data = load_dataset(path=folder)
    held, trained = _held_out_texts(data, fraction)
    assert held and trained  # both kinds exist in the slice
    view = training_view(data, fraction)
    # the view keeps exactly the reviews of the training part
    is_train = split_by_time(data.interactions, fraction).to_numpy()
    train_pairs = set(map(tuple, data.interactions.loc[is_train, ["user", "item"]].to_numpy()))
    assert set(map(tuple, view.reviews[["user", "item"]].to_numpy())) <= train_pairs
    # no description made from reviews quotes a held-out review
    described = " ".join(" ".join(t.split()) for t in view.items["text"])
    assert not any(h[:40] in described for h in held)
    # the LLM analyser (objective and subjective paths) never sees one, and the analysis refuses a
    # dataset with reviews that is not a training view
    backend = RecordingBackend()
    analyser = LLMAnalyser(backend, ReplyCache(tmp_path / "c.sqlite"), lambda c: [], LLMAnalyserSettings(min_count=1))
    profiles = analyser.analyse(view, analysis_reviews(view, None))
    prompts = "\n".join(backend.prompts)
    assert not any(h[:40] in prompts for h in held)
    assert any(t[:40] in prompts for t in trained)  # training reviews do reach the subjective path
    assert len(profiles) == data.n_items
    with pytest.raises(ValueError, match="training view"):
        analyse_with_config(data, AnalyserConfig(kind="llamacpp"), tmp_path, lambda c: [], backend=backend)


def test_a_scenario_run_analyses_the_training_view_of_its_own_split(tmp_path: Path) -> None:
    from tastesim.world.build import profiles_for

    data = load_dataset(path=AMAZON_2018)
    held, _ = _held_out_texts(data, 0.5)
    scenario = Scenario(
        dataset=DatasetConfig(path=AMAZON_2018),
        population={"train_fraction": 0.5},
        analyser=AnalyserConfig(embedder="hashing"),
        cache_dir=tmp_path,
    )
    profiles = profiles_for(data, scenario)
    reasons = " ".join(r.text for p in profiles for r in (*p.like, *p.dislike))
    assert not any(h[:30] in reasons for h in held)
    view = training_view(data, 0.5)
    with pytest.raises(ValueError, match=r"not at 0\.8"):
        training_view(view, 0.8)
