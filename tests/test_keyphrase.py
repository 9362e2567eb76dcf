"""Offline item analysis: keyword normalisation, the keyphrase analyser, profile files and the cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastesim.analysis.aspects import DISLIKE_ASPECTS, LIKE_ASPECTS
from tastesim.analysis.cache import cached_profiles
from tastesim.analysis.keyphrase import KeyphraseAnalyser, KeyphraseSettings
from tastesim.catalog.profile import ItemProfile, Reason, read_profiles, write_profiles
from tastesim.data import DataFormatError, Dataset
from tastesim.embedding import HashingEmbedder, cached_embeddings
from tastesim.paths import default_cache_dir
from tastesim.text import STOP_WORDS, normalise_keyword, tokenise

PHRASE_EVIDENCE = "keyphrase of the item's text"
LIKE_BY_TEXT = {a[0]: a for a in LIKE_ASPECTS}
DISLIKE_BY_TEXT = {a[0]: a for a in DISLIKE_ASPECTS}


def _items_dataset(name: str, items: pd.DataFrame) -> Dataset:
    """A dataset whose catalog is ``items`` (the analyser only reads the items table)."""
    items = items.reset_index(drop=True)
    interactions = pd.DataFrame(
        {
            "user": ["u"],
            "item": [items["item"].iloc[0]],
            "rating": [4.0],
            "timestamp": np.array([0], dtype=np.int64),
        }
    )
    return Dataset(name, interactions, items)


def _tiny_catalog() -> Dataset:
    texts = [
        "Daring heist in Paris.",
        "A daring heist goes wrong.",
        "The heists and space battles.",
        "Space battles over Paris.",
        "Space battles go wrong.",
        "Quiet romance.",
    ]
    items = pd.DataFrame(
        {
            "item": [f"i{n}" for n in range(len(texts))],
            "title": [f"Item {n}" for n in range(len(texts))],
            "categories": [
                ("Crime",),
                ("Crime", "Comedy"),
                ("Crime", "Sci-Fi"),
                ("Sci-Fi",),
                ("Sci-Fi", "War"),
                ("Romance",),
            ],
            "text": texts,
        }
    )
    return _items_dataset("tiny", items)


def _check_profile_shape(profile: ItemProfile, max_like: int = 3, n_dislike: int | None = None) -> None:
    assert 1 <= len(profile.like) <= max_like
    if n_dislike is None:
        assert 1 <= len(profile.dislike) <= 3
    else:
        assert len(profile.dislike) == n_dislike
    for reason in (*profile.like, *profile.dislike):
        assert reason.text
        assert 1 <= len(reason.keywords) <= 3
        assert all(isinstance(k, str) and k and k == k.lower() for k in reason.keywords)
    assert len({r.text for r in profile.like}) == len(profile.like)
    assert len({r.text for r in profile.dislike}) == len(profile.dislike)


# ------------------------------------------------------------------------------------------- keywords


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Heists", "heist"),
        ("comedies", "comedy"),
        ("boxes", "box"),
        ("buzzes", "buzz"),
        ("cats", "cat"),
        ("class", "class"),
        ("virus", "virus"),
        ("famous", "famous"),
        ("analysis", "analysis"),
        ("bus", "bus"),
        ("ties", "tie"),
        ("gas", "gas"),
        (" Dogs.", "dog"),
        ("'Robots!'", "robot"),
        ("Action", "action"),
    ],
)
def test_normalise_keyword(word: str, expected: str) -> None:
    assert normalise_keyword(word) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Hero's journey, well-known!", ["the", "hero", "journey", "well-known"]),
        ("Rock'n'roll -- 42 R2-D2 'quoted'", ["rock'n'roll", "r2-d2", "quoted"]),
        ("James' car", ["james", "car"]),
        ("", []),
        ("...", []),
    ],
)
def test_tokenise(text: str, expected: list[str]) -> None:
    assert tokenise(text) == expected


def test_stop_words_are_lower_case_tokens() -> None:
    assert {"film", "the", "story"} <= STOP_WORDS
    assert all(tokenise(w) == [w] for w in STOP_WORDS)


# ------------------------------------------------------------------------------------------- analyser


def test_tiny_catalog_keyphrases_hand_derived() -> None:
    # min_df=2 and max_df=0.5 of 6 items: a phrase qualifies when it occurs in 2 or 3 items. "Paris" only
    # ever appears capitalised (a name), "Quiet" too, and "romance" occurs once, so:
    candidates = [
        {"daring", "heist", "daring heist"},
        {"daring", "heist", "daring heist", "wrong"},
        {"heist", "space", "battle", "space battle"},
        {"space", "battle", "space battle"},
        {"space", "battle", "space battle", "wrong"},
        set(),
    ]
    settings = KeyphraseSettings(min_df=2, max_df=0.5)
    profiles = KeyphraseAnalyser(HashingEmbedder(dim=64), settings).analyse(_tiny_catalog())
    assert [p.item for p in profiles] == [f"i{n}" for n in range(6)]
    for profile, allowed in zip(profiles, candidates, strict=True):
        phrases = [r for r in profile.like if r.evidence == PHRASE_EVIDENCE]
        aspects = [r for r in profile.like if r.evidence != PHRASE_EVIDENCE]
        assert {r.text for r in phrases} <= allowed
        assert len(phrases) == min(settings.n_content, len(allowed))
        for r in phrases:
            assert r.keywords == tuple(r.text.split())
        # Like reasons are topped up with aspects to n_content + 1 in all.
        assert len(profile.like) == settings.n_content + 1
        assert len(aspects) == settings.n_content + 1 - len(phrases)
        assert all(r.text in LIKE_BY_TEXT for r in aspects)
        assert len(profile.dislike) == settings.n_dislike
        assert all(r.text in DISLIKE_BY_TEXT for r in profile.dislike)
        _check_profile_shape(profile, n_dislike=settings.n_dislike)


def test_vocabulary_filter_can_remove_every_phrase() -> None:
    settings = KeyphraseSettings(min_df=4, max_df=0.5)  # no phrase occurs in 4+ items
    profiles = KeyphraseAnalyser(HashingEmbedder(dim=64), settings).analyse(_tiny_catalog())
    for profile in profiles:
        assert all(r.evidence != PHRASE_EVIDENCE for r in profile.like)
        assert len(profile.like) == settings.n_content + 1


def test_plural_of_a_stop_word_is_no_keyphrase() -> None:
    texts = ["Rival groups clash at dawn.", "Two groups meet.", "Quiet groups rest.", "A lone rider."]
    items = pd.DataFrame(
        {
            "item": ["a", "b", "c", "d"],
            "title": ["A", "B", "C", "D"],
            "categories": [("Drama",)] * 4,
            "text": texts,
        }
    )
    profiles = KeyphraseAnalyser(HashingEmbedder(), KeyphraseSettings(min_df=2, max_df=1.0)).analyse(
        _items_dataset("plural", items)
    )
    assert "group" in STOP_WORDS
    keywords = {k for p in profiles for r in p.like if r.evidence == PHRASE_EVIDENCE for k in r.keywords}
    assert not keywords & STOP_WORDS


def test_aspect_reasons_carry_normalised_lexicon_keywords() -> None:
    profiles = KeyphraseAnalyser(HashingEmbedder(dim=64)).analyse(_tiny_catalog())
    for profile in profiles:
        for reason in profile.like:
            if reason.text in LIKE_BY_TEXT:
                assert reason.keywords == tuple(normalise_keyword(k) for k in LIKE_BY_TEXT[reason.text][1])
        for reason in profile.dislike:
            assert reason.keywords == tuple(normalise_keyword(k) for k in DISLIKE_BY_TEXT[reason.text][1])


def test_analyser_is_deterministic_on_real_items(ml100k: Dataset) -> None:
    catalog = _items_dataset("ml-200", ml100k.items.head(200))
    first = KeyphraseAnalyser(HashingEmbedder()).analyse(catalog)
    second = KeyphraseAnalyser(HashingEmbedder()).analyse(catalog)
    assert first == second
    assert [p.item for p in first] == catalog.items["item"].tolist()
    assert [p.categories for p in first] == catalog.items["categories"].tolist()
    assert all(p.source == "keyphrase" for p in first)
    for profile, text in zip(first, catalog.items["text"], strict=True):
        _check_profile_shape(profile, n_dislike=3)
        words = {normalise_keyword(t) for t in tokenise(text)}
        for reason in profile.like:
            if reason.evidence == PHRASE_EVIDENCE:
                assert set(reason.keywords) <= words
                assert not set(reason.keywords) & STOP_WORDS
    # Real descriptions yield content keyphrases for most items.
    with_phrases = sum(any(r.evidence == PHRASE_EVIDENCE for r in p.like) for p in first)
    assert with_phrases > len(first) // 2


def test_large_category_bonus_picks_aspects_of_the_items_categories(slice_dataset: Dataset) -> None:
    settings = KeyphraseSettings(n_content=0, category_bonus=10.0)
    profiles = KeyphraseAnalyser(HashingEmbedder(), settings).analyse(slice_dataset)
    for profile in profiles:
        _check_profile_shape(profile, max_like=1, n_dislike=3)
        cats = set(profile.categories)
        assert cats & set(LIKE_BY_TEXT[profile.like[0].text][2])
        # The first dislike pick is the plain best score; later picks trade score for variety.
        assert cats & set(DISLIKE_BY_TEXT[profile.dislike[0].text][2])


def test_settings_change_reason_counts_and_cache_tag(slice_dataset: Dataset) -> None:
    base = KeyphraseAnalyser(HashingEmbedder())
    fewer = KeyphraseAnalyser(HashingEmbedder(), KeyphraseSettings(n_content=0, n_dislike=1))
    assert base.cache_tag != fewer.cache_tag
    assert "hashing" in base.cache_tag
    assert base.cache_tag == KeyphraseAnalyser(HashingEmbedder()).cache_tag
    for profile in fewer.analyse(slice_dataset):
        assert len(profile.like) == 1 and len(profile.dislike) == 1


def test_minilm_profiles_for_real_items(ml100k: Dataset, minilm) -> None:
    catalog = _items_dataset("ml-20", ml100k.items.head(20))
    profiles = KeyphraseAnalyser(minilm).analyse(catalog)
    assert len(profiles) == 20
    for profile in profiles:
        _check_profile_shape(profile)
    # Semantics, not just shape: Toy Story's like aspects include one typical of its genres.
    toy = profiles[0]
    assert toy.categories == ("Animation", "Children's", "Comedy")
    aspect_cats = {c for r in toy.like if r.text in LIKE_BY_TEXT for c in LIKE_BY_TEXT[r.text][2]}
    assert aspect_cats & set(toy.categories)


# -------------------------------------------------------------------------------------------- profile


def _sample_profiles() -> list[ItemProfile]:
    return [
        ItemProfile(
            "543",
            ("Drama", "Musical"),
            (Reason("memorable songs", ("song", "music"), "aspect"), Reason("barricade", ("barricade",))),
            (Reason("constant singing", ("singing", "musical"), "aspect"),),
            "keyphrase",
        ),
        ItemProfile("x", ("unknown",), (Reason("Ünïcode — ok", ("ünïcode",)),), (), "llm:test"),
    ]


def test_profile_round_trip(tmp_path: Path) -> None:
    profiles = _sample_profiles()
    path = tmp_path / "deep" / "profiles.jsonl"
    write_profiles(profiles, path)
    assert read_profiles(path) == profiles
    assert [p.name for p in path.parent.iterdir()] == ["profiles.jsonl"]  # no temporary file left
    assert path.read_text(encoding="utf-8").count("\n") == 2
    assert "Ünïcode" in path.read_text(encoding="utf-8")  # written as UTF-8, not escaped
    assert profiles[0].category == "Drama"


def test_profile_round_trip_of_analysed_catalog(tmp_path: Path, slice_dataset: Dataset) -> None:
    profiles = KeyphraseAnalyser(HashingEmbedder()).analyse(slice_dataset)
    write_profiles(profiles, tmp_path / "p.jsonl")
    assert read_profiles(tmp_path / "p.jsonl") == profiles


def test_read_profiles_skips_blank_lines_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '\n{"item": 7, "categories": ["Drama"], "like": [{"text": "t", "keywords": ["k"]}], "dislike": []}\n\n',
        encoding="utf-8",
    )
    assert read_profiles(path) == [ItemProfile("7", ("Drama",), (Reason("t", ("k",), ""),), (), "unknown")]


@pytest.mark.parametrize("bad", ["{not json", '{"item": "1", "categories": ["A"], "like": []}'])
def test_read_profiles_bad_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "p.jsonl"
    write_profiles(_sample_profiles(), path)
    path.write_text(path.read_text(encoding="utf-8") + bad + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="not an item profile") as info:
        read_profiles(path)
    assert info.value.path == path
    assert info.value.line == 3


# ---------------------------------------------------------------------------------------------- cache


def test_cached_profiles_built_once(tmp_path: Path, slice_dataset: Dataset) -> None:
    calls: list[str] = []
    analyser = KeyphraseAnalyser(HashingEmbedder())

    def build(ds: Dataset) -> list[ItemProfile]:
        calls.append(ds.name)
        return analyser.analyse(ds)

    first, path, hit = cached_profiles(slice_dataset, analyser.cache_tag, build, tmp_path)
    assert not hit and calls == ["ml-100k-slice"]
    assert path.exists() and path.parent == tmp_path / "profiles"
    assert path.name.startswith("ml-100k-slice-")
    second, path2, hit2 = cached_profiles(slice_dataset, analyser.cache_tag, build, tmp_path)
    assert hit2 and path2 == path
    assert calls == ["ml-100k-slice"]  # not rebuilt
    assert second == first

    # A different analyser tag or a changed catalog text is a different cache entry.
    _, path3, hit3 = cached_profiles(slice_dataset, analyser.cache_tag + "-other", build, tmp_path)
    assert not hit3 and path3 != path
    items = slice_dataset.items.copy()
    items.loc[0, "text"] = items.loc[0, "text"] + " Changed."
    changed = replace(slice_dataset, items=items)
    _, path4, hit4 = cached_profiles(changed, analyser.cache_tag, build, tmp_path)
    assert not hit4 and path4 not in {path, path3}
    assert len(calls) == 3


def test_cached_embeddings_computed_once(tmp_path: Path) -> None:
    calls: list[int] = []
    embedder = HashingEmbedder(dim=16)

    def embed(texts):
        calls.append(len(texts))
        return embedder.embed(texts).astype(np.float64)

    texts = ["space battle", "daring heist"]
    first = cached_embeddings(texts, "hashing", embed, tmp_path)
    assert first.dtype == np.float32 and first.shape == (2, 16)
    again = cached_embeddings(texts, "hashing", embed, tmp_path)
    np.testing.assert_array_equal(again, first)
    assert calls == [2]
    cached_embeddings(texts, "other-model", embed, tmp_path)
    cached_embeddings(list(reversed(texts)), "hashing", embed, tmp_path)
    assert calls == [2, 2, 2]
    assert sorted(p.suffix for p in (tmp_path / "embeddings").iterdir()) == [".npy"] * 3


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TASTESIM_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("TASTESIM_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "tastesim"
