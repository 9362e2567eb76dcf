"""The Q4_0 copy of the shipped embedded model: faithful weights, same metadata, made once, never half-written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="the llm extra (gguf) is not installed")

from tastesim.llm.backend import LLMError  # noqa: E402
from tastesim.llm.llamacpp import DEFAULT_GGUF, SHIPPED, LlamaCppBackend, default_gguf  # noqa: E402
from tastesim.llm.requantize import requantized, requantized_name  # noqa: E402
from tastesim.scenario import LlamaCppSettings  # noqa: E402

pytestmark = pytest.mark.slow  # real servers and processes, or tens of seconds of model conversion


@pytest.fixture(scope="module")
def shipped() -> Path:
    try:
        return default_gguf()
    except LLMError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def copy(shipped: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return requantized(shipped, tmp_path_factory.mktemp("cache"))


def test_name_swaps_the_quantisation_tag() -> None:
    assert requantized_name(Path("SmolLM2-135M-Instruct.Q4_1.gguf")) == "SmolLM2-135M-Instruct.Q4_0.gguf"
    assert requantized_name(Path("/m/other.gguf")) == "other.Q4_0.gguf"


def test_copy_requantises_q4_1_tensors_and_keeps_the_rest(shipped: Path, copy: Path) -> None:
    source, target = gguf.GGUFReader(shipped), gguf.GGUFReader(copy)
    q41, q40 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q4_0
    assert [t.name for t in source.tensors] == [t.name for t in target.tensors]
    for before, after in zip(source.tensors, target.tensors, strict=True):
        assert list(before.shape) == list(after.shape)
        if before.tensor_type == q41:
            assert after.tensor_type == q40
        else:
            assert after.tensor_type == before.tensor_type
            assert np.array_equal(before.data, after.data)
    kept = {k: f.contents() for k, f in source.fields.items() if not k.startswith("GGUF.")}
    copied = {k: f.contents() for k, f in target.fields.items() if not k.startswith("GGUF.")}
    assert copied.pop("general.file_type") == int(gguf.LlamaFileType.MOSTLY_Q4_0)
    kept.pop("general.file_type")
    assert copied == kept


def test_requantised_weights_stay_close(shipped: Path, copy: Path) -> None:
    source, target = gguf.GGUFReader(shipped), gguf.GGUFReader(copy)
    q41, q40 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q4_0
    pairs = [(b, a) for b, a in zip(source.tensors, target.tensors, strict=True) if b.tensor_type == q41]
    for before, after in pairs[:: len(pairs) // 6]:
        original = gguf.quants.dequantize(before.data, q41)
        again = gguf.quants.dequantize(after.data, q40)
        # Q4_0 scales each block of 32 by its largest magnitude over 8: no weight moves by more than one step.
        step = np.abs(original.reshape(-1, 32)).max(axis=1, keepdims=True) / 8
        assert np.all(np.abs(again - original).reshape(-1, 32) <= step * 1.01 + 1e-6)
        assert np.corrcoef(original.ravel(), again.ravel())[0, 1] > 0.99


def test_copy_is_made_once_and_remade_for_a_changed_source(tmp_path: Path, shipped: Path) -> None:
    source = tmp_path / DEFAULT_GGUF
    source.write_bytes(shipped.read_bytes())
    first = requantized(source, tmp_path / "cache")
    made = first.stat().st_mtime_ns
    assert requantized(source, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == made
    os.utime(source, ns=(made + 10**9, made + 10**9))
    second = requantized(source, tmp_path / "cache")
    assert second != first and second.is_file()
    assert list((tmp_path / "cache").rglob("*.partial")) == []


def test_conversion_killed_midway_leaves_nothing_behind(
    tmp_path: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: object) -> None:
        raise KeyboardInterrupt  # as when the user presses Ctrl-C while tensors are being written

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", crash)
    with pytest.raises(KeyboardInterrupt):
        requantized(shipped, tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_corrupt_source_raises_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "broken.Q4_1.gguf"
    source.write_bytes(b"GGUF not really a model")
    with pytest.raises(ValueError):
        requantized(source, tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_backend_runs_the_copy_by_default_and_the_shipped_file_on_request(tmp_path: Path, copy: Path) -> None:
    default = LlamaCppBackend(LlamaCppSettings(cache_dir=tmp_path))
    assert default.model == "SmolLM2-135M-Instruct.Q4_0.gguf"
    assert LlamaCppBackend(LlamaCppSettings(model=SHIPPED)).model == DEFAULT_GGUF
    assert LlamaCppBackend(LlamaCppSettings(model=str(copy))).model == copy.name
    reply = default.complete("The capital of France is", max_tokens=4)
    assert reply.completion_tokens > 0 and reply.text.strip()
    assert [p.name for p in tmp_path.rglob("*.gguf")] == [default.model]
