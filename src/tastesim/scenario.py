"""Scenario files: frozen, validated configuration (pydantic, unknown keys are errors)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tastesim.data import BUILTIN_DATASETS

__all__ = [
    "ExecutionConfig",
    "LLMSettings",
    "LlamaCppSettings",
    "OllamaSettings",
    "Scenario",
    "ScenarioError",
    "backend_settings",
    "load_scenario",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")


def _run_name(name: str) -> str:
    """A name that is safe as a folder name and as the stem of Chroma collections (``tastesim-NAME-shard-K``)."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{name!r} cannot name a run: use 1-64 letters, digits, '.', '_' or '-', starting and ending with a "
            "letter or digit, never '..' (it names the output folder and the Chroma collection)"
        )
    return name


RunName = Annotated[str, AfterValidator(_run_name)]


class DatasetConfig(_Section):
    """Where the data comes from: a built-in ``name`` or a folder ``path``."""

    name: str | None = Field(None, description="built-in dataset name, or the atomic-file stem inside path")
    path: Path | None = Field(
        None, description="dataset folder: generic CSVs, RecBole atomic files, Amazon or Yelp reviews"
    )
    format: Literal["auto", "atomic", "generic", "amazon", "yelp"] = Field(
        "auto", description="auto recognises the format from the folder's files"
    )

    @model_validator(mode="after")
    def _known(self) -> DatasetConfig:
        if self.path is None and self.name not in BUILTIN_DATASETS:
            raise ValueError(f"give a path, or a built-in name ({', '.join(BUILTIN_DATASETS)}); got name={self.name!r}")
        if self.path is not None and not _exists(self.path, "dir"):
            raise ValueError(f"dataset path {str(self.path)!r} is not a folder")
        return self


class PopulationConfig(_Section):
    """Which users become agents and how their histories are split."""

    users: int | None = Field(
        None, gt=0, le=10_000_000, description="agents to build; all users when empty, resampled when above"
    )
    train_fraction: float = Field(0.8, gt=0, lt=1, description="earlier share of each user's ratings seeding memory")
    like_threshold: float = Field(3.0, description="rating at or above which an item counts as liked")
    activity: float = Field(1.0, gt=0, le=1, description="probability that an agent acts in a step")


class MemoryConfig(_Section):
    """Agent memory: working set in RAM, long-term store in Chroma."""

    capacity: int = Field(16, ge=1, le=512, description="distinct reasons each agent keeps in working memory")
    server: str | None = Field(None, pattern=r"^https?://", description="Chroma server URL; embedded store when empty")
    checkpoint_every: int = Field(5, ge=1, description="steps between checkpoints (each flushes memory writes)")
    shards: int = Field(
        2, ge=1, le=16, description="store shards (memory/shard-K), one writer process each; 1 = one collection"
    )


class AnalyserConfig(_Section):
    """How item profiles are obtained."""

    kind: Literal["keyphrase", "llamacpp", "ollama"] = Field(
        "keyphrase", description="offline analyser, embedded GGUF model (llama.cpp), or an Ollama server"
    )
    profiles: Path | None = Field(None, description="JSONL of item profiles to use instead of analysing")
    embedder: Literal["minilm", "hashing"] = "minilm"
    model: str | None = Field(
        None, description="Ollama model name, or GGUF path / 'shipped' (llamacpp); the backend's default when empty"
    )
    base_url: str | None = Field(None, pattern=r"^https?://", description="Ollama server; $OLLAMA_HOST when empty")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds per LLM request")
    retries: int = Field(2, ge=0, le=10, description="retries of a request after a timeout or server error")
    concurrency: int | None = Field(
        None, ge=1, le=64, description="LLM requests in flight at once; empty = 4 embedded (llama.cpp slots), 2 Ollama"
    )
    reviews: Path | None = Field(None, description="reviews (JSONL or item,rating,text CSV) for the subjective path")
    reviews_per_item: int = Field(5, ge=0, le=100, description="reviews analysed per item")
    max_tokens: int | None = Field(
        None, ge=8, le=4096, description="token limit of one objective reply; empty = 64 embedded, 400 Ollama JSON"
    )
    keyword_min_count: int = Field(2, ge=1, description="keywords in fewer items are dropped")
    keyword_max_share: float = Field(0.3, gt=0, le=1, description="keywords in a larger share of items are dropped")

    @property
    def in_flight(self) -> int:
        """Requests in flight: ``concurrency``, else 4 embedded slots (measured fastest on 2 cores) or 2 for Ollama."""
        return self.concurrency or (4 if self.kind == "llamacpp" else 2)

    @model_validator(mode="after")
    def _exists(self) -> AnalyserConfig:
        for name in ("profiles", "reviews"):
            path = getattr(self, name)
            if path is not None and not _exists(path, "file"):
                raise ValueError(f"{name} file {str(path)!r} not found")
        return self


# The LLM backends' settings live here, below the llm package, so that a scenario can validate them (a typo in
# conversation.llm_options is a scenario error naming the field); tastesim.llm's backends take them as they are.
class OllamaSettings(_Section):
    """Settings of the ``ollama`` LLM backend: a real Ollama, or ``tastesim llm serve``."""

    model: str | None = Field(None, min_length=1, description="Ollama model name; llama3.1:8b when empty")
    base_url: str | None = Field(None, pattern=r"^https?://", description="server address; $OLLAMA_HOST when empty")
    timeout: float = Field(120.0, gt=0, le=3600, description="seconds per HTTP request")
    retries: int = Field(2, ge=0, le=10, description="extra attempts after a timeout, a refused connection or a 5xx")
    backoff: float = Field(1.0, ge=0, le=60, description="seconds before the first retry; doubles each time")
    concurrency: int = Field(2, ge=1, le=64, description="requests in flight at once")


class LlamaCppSettings(_Section):
    """Settings of the ``llamacpp`` LLM backend: a GGUF model run in-process by llama.cpp."""

    model: str | None = Field(
        None, min_length=1, description="GGUF file, or 'shipped'; empty = the Q4_0 copy of the shipped SmolLM2-135M"
    )
    cache_dir: Path | None = Field(None, description="where that Q4_0 copy is kept; the run's cache when empty")
    n_ctx: int = Field(4096, ge=128, le=131_072, description="context tokens per slot")
    threads: int | None = Field(None, ge=1, le=256, description="CPU threads; min(cores, 4) when empty")
    parallel: int = Field(1, ge=1, le=64, description="llama.cpp slots: requests decoded together")
    repeat_penalty: float = Field(1.15, gt=0, le=5, description="penalty on repeated tokens")


LLMSettings = OllamaSettings | LlamaCppSettings
_LLM_SETTINGS: dict[str, type[LLMSettings]] = {"ollama": OllamaSettings, "llamacpp": LlamaCppSettings}


def backend_settings(kind: str, options: Mapping[str, Any]) -> LLMSettings:
    """Validate ``options`` into the settings of the backend ``kind`` (``ollama`` or ``llamacpp``).

    Raises:
        ValidationError: Naming each bad option (an unknown one is ``Extra inputs are not permitted``).
        ValueError: For an unknown kind.
    """
    if kind not in _LLM_SETTINGS:
        raise ValueError(f"unknown LLM backend {kind!r}; choose one of {', '.join(_LLM_SETTINGS)}")
    return _LLM_SETTINGS[kind].model_validate(dict(options))


RecommenderName = Literal["random", "popularity", "itemknn", "diverse", "mf", "sasrec", "http"]


class RecommenderConfig(_Section):
    """The recommender under test (tastesim.recommenders): a built-in, or a service over HTTP."""

    name: RecommenderName = Field(
        "popularity",
        description="random | popularity | itemknn | diverse (item-kNN re-ranked) | mf (ALS) | sasrec | http",
    )
    slate_size: int = Field(10, ge=1, le=200)
    allow_repeats: bool = False
    neighbours: int = Field(50, ge=1, description="item-kNN neighbours kept per item")
    factors: int = Field(64, ge=2, le=1024, description="latent factors of mf; hidden size of sasrec (at most 64)")
    retrain_every: int | None = Field(
        None, ge=1, description="refit on the training data plus the simulated feedback every K steps; never if empty"
    )
    url: str | None = Field(None, pattern=r"^https?://", description="base URL of the recommender service (http)")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="seconds per request to the recommender service")

    @model_validator(mode="after")
    def _service(self) -> RecommenderConfig:
        if (self.name == "http") != (self.url is not None):
            raise ValueError("name: http needs a url, and a url needs name: http")
        return self


class DecisionConfig(_Section):
    """The decision model (see tastesim.scoring.deciders) and its settings."""

    model: Literal["logical", "vote", "learned", "distilled"] = Field(
        "distilled", description="logical rule, 2-of-3 vote, learned ensemble, or distilled scorer"
    )
    click_threshold: float = Field(0.8, ge=-1, le=1, description="appeal at which a click is a coin flip")
    click_temperature: float = Field(0.08, gt=0, description="softness of the click threshold")
    tie_like: float | None = Field(
        None, ge=0, le=1, description="probability of like on a tied vote; empty = the training like rate"
    )
    stat_epochs: int = Field(20, ge=1, le=500, description="training epochs of the statistical model")
    stat_dim: int = Field(32, ge=4, le=512, description="hidden size of the statistical model")
    negatives: int = Field(9, ge=1, le=50, description="never-rated items per real item when fitting the scorers")
    hidden: int = Field(32, ge=1, le=1024, description="hidden units of the distilled scorer")
    teacher_weight: float = Field(0.5, ge=0, le=1, description="share of the ensemble in the distilled like target")


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # an environment variable's name, never a key itself
CRSKind = Literal["retrieval", "popularity", "llm"]


class CRSEntry(_Section):
    """One CRS of a side-by-side comparison: a built-in one, or an endpoint."""

    name: str = Field(min_length=1, max_length=40, description="label in the report")
    builtin: CRSKind | None = Field(None, description="retrieval | popularity | llm, served by tastesim serve-crs")
    url: str | None = Field(None, pattern=r"^https?://", description="endpoint of a CRS under test")
    mode: Literal["json", "openai", "chat"] = Field("json", description="json contract, openai (JSON in chat), chat")
    model: str = Field("crs", description="model name sent in openai and chat modes")
    api_key_env: str | None = Field(None, pattern=_ENV_NAME, description="environment variable holding the API key")

    @model_validator(mode="after")
    def _one_target(self) -> CRSEntry:
        if (self.builtin is None) == (self.url is None):
            raise ValueError("give exactly one of builtin or url")
        if self.builtin and self.mode == "chat":
            raise ValueError("a built-in CRS answers in mode json or openai (chat is for LLM endpoints)")
        return self


class ConversationConfig(_Section):
    """Conversational sessions against a CRS (see tastesim.conversation); set it to run conversations."""

    crs_url: str | None = Field(
        None, pattern=r"^https?://", description="endpoint of the CRS under test; the built-in crs_builtin when empty"
    )
    crs_mode: Literal["json", "openai", "chat"] = Field(
        "json", description="json contract, openai (the JSON contract inside a chat completion), or chat (free text)"
    )
    crs_model: str = Field("crs", description="model name sent in openai and chat modes")
    crs_builtin: CRSKind = Field("retrieval", description="the built-in CRS served when crs_url is empty")
    crs_api_key_env: str | None = Field(
        None, pattern=_ENV_NAME, description="environment variable holding the CRS's API key (never the key itself)"
    )
    compare: list[CRSEntry] = Field(
        default_factory=list, description="several CRSs held to the same sessions, side by side (overrides crs_*)"
    )
    protocol: Literal["target", "liked"] = Field(
        "target", description="target: success when the user's held-out target is shown; liked: when anything is liked"
    )
    sessions: int = Field(100, ge=1, le=100_000, description="conversations to hold")
    concurrency: int = Field(100, ge=1, le=2_000, description="sessions in flight at once")
    turns: int = Field(5, ge=1, le=50, description="user turns before the agent abandons")
    k: int = Field(10, ge=1, le=100, description="items the user sees of each reply")
    rank_k: int = Field(50, ge=1, le=1000, description="items asked of the CRS per turn (recall@k up to it)")
    patience: float = Field(3.0, ge=1, le=50, description="mean turns without progress a user bears (drawn per user)")
    reasons: int = Field(3, ge=1, le=10, description="reasons a query is written from")
    recall: Literal["store", "working"] = Field(
        "store", description="recall reasons through the Chroma store (run folder or memory.server) or working memory"
    )
    styles: dict[Literal["terse", "natural", "vague", "noisy", "paraphrase"], float] = Field(
        default_factory=lambda: dict.fromkeys(("terse", "natural", "vague", "noisy", "paraphrase"), 0.2),
        description="query styles and their population shares",
    )
    behaviours: dict[Literal["cooperative", "changes_mind", "contradictory", "negative_only"], float] = Field(
        default_factory=lambda: {"cooperative": 1.0}, description="user behaviours and their population shares"
    )
    writer: Literal["template", "llm"] = "template"
    writer_guard: bool = Field(True, description="regenerate, then fall back to the template, on failed LLM messages")
    writer_prompts: Literal["v1", "v2"] = Field("v2", description="prompt set of the llm writer")
    llm: Literal["ollama", "llamacpp"] = Field("llamacpp", description="LLM backend of the llm writer")
    llm_options: dict[str, Any] = Field(
        default_factory=dict, description="settings of that backend (OllamaSettings or LlamaCppSettings)"
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="per-request timeout")
    retries: int = Field(2, ge=0, le=10, description="retries of requests that are safe to repeat")
    transcripts: int = Field(20, ge=0, description="sessions whose full conversation is saved")
    max_seconds: float = Field(600.0, gt=0, description="wall-clock bound on the whole stress run")

    @field_validator("llm_options")
    @classmethod
    def _valid_llm_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "llm" in info.data:  # else ``llm`` itself is wrong, and that is the error to show
            backend_settings(info.data["llm"], options)  # its errors are located under llm_options
        return options

    @property
    def llm_settings(self) -> LLMSettings:
        """``llm_options`` as the settings of the ``llm`` backend."""
        return backend_settings(self.llm, self.llm_options)

    @property
    def targets(self) -> list[CRSEntry]:
        """The CRSs under test: ``compare``, or the one ``crs_*`` describes."""
        if self.compare:
            return list(self.compare)
        if self.crs_url:
            return [CRSEntry(name="crs", url=self.crs_url, mode=self.crs_mode, model=self.crs_model,
                             api_key_env=self.crs_api_key_env)]  # fmt: skip
        return [CRSEntry(name=self.crs_builtin, builtin=self.crs_builtin, mode=self.crs_mode)]

    @model_validator(mode="after")
    def _shares(self) -> ConversationConfig:
        for name, shares in (("styles", self.styles), ("behaviours", self.behaviours)):
            if not shares or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
                raise ValueError(f"{name}: give at least one with a positive share (shares must not be negative)")
        if self.rank_k < self.k:
            raise ValueError(f"rank_k ({self.rank_k}) must be at least k ({self.k}), the items the user sees")
        names = [c.name for c in self.compare]
        if len(set(names)) != len(names):
            raise ValueError(f"compare: names must differ, got {names}")
        return self


class DriftConfig(_Section):
    """Interest drift dynamics (equations in tastesim.agents.drift)."""

    enabled: bool = Field(True, description="move interests and let them shift click odds")
    pull: float = Field(0.1, ge=0, le=1, description="step toward a liked item; EMA rate of category interest")
    push: float = Field(0.05, ge=0, le=1, description="step away from a disliked item")
    decay: float = Field(0.02, ge=0, lt=1, description="share of the interest mass forgotten per step")
    satiation_weight: float = Field(0.15, ge=0, description="click log-odds lost per unit of category satiation")
    recovery: float = Field(0.3, ge=0, le=1, description="share of satiation wearing off per step")
    affinity: float = Field(4.0, ge=0, description="click log-odds per unit of cosine gained toward an item")
    exploration: float = Field(0.02, ge=0, le=1, description="chance a shown item gets an exploratory boost")
    exploration_bonus: float = Field(2.0, ge=0, description="log-odds of that boost")


class SegmentsConfig(_Section):
    """Attributes that split drift metrics: age (bands), activity (terciles), or any user attribute."""

    by: list[str] = Field(default_factory=lambda: ["age", "gender", "activity"])


class _Shock(_Section):
    step: int = Field(gt=0, description="step at which the shock takes effect")


class _ItemShock(_Shock):
    category: str | None = Field(None, description="items whose primary category is this")
    items: list[str] | None = Field(None, description="explicit item ids")

    @model_validator(mode="after")
    def _target(self) -> _ItemShock:
        if (self.category is None) == (self.items is None):
            raise ValueError("give exactly one of category or items")
        return self


class LaunchShock(_ItemShock):
    """Items hidden from every slate until ``step`` (a new category or item batch launched)."""

    kind: Literal["launch"]


class TrendShock(_ItemShock):
    """From ``step`` (to ``until``), ``slots`` slate positions go to the trending items."""

    kind: Literal["trend"]
    until: int | None = Field(None, gt=0, description="last step of the trend; open-ended when empty")
    slots: int = Field(2, ge=1, description="slate positions (from the end) given to trending items")


class SwitchShock(_Shock):
    """The recommender under test is replaced from ``step``."""

    kind: Literal["switch"]
    recommender: Literal["random", "popularity", "itemknn", "diverse", "mf"]


class JoinShock(_Shock):
    """Agents of a segment (``{attribute: value}``) stay inactive until ``step``."""

    kind: Literal["join"]
    segment: dict[str, str] = Field(min_length=1)


class PerturbShock(_Shock):
    """At ``step``, a segment's interests are pulled toward a category by ``strength`` (0..1)."""

    kind: Literal["perturb"]
    segment: dict[str, str] = Field(min_length=1)
    toward: str = Field(description="category the segment's interests move toward")
    strength: float = Field(0.5, gt=0, le=1)


Shock = Annotated[LaunchShock | TrendShock | SwitchShock | JoinShock | PerturbShock, Field(discriminator="kind")]


class ExecutionConfig(_Section):
    """Where the population's agents are stepped: in this process, or in shards on a Ray cluster."""

    engine: Literal["local", "ray"] = Field(
        "local", description="local: this process; ray: population shards as Ray actors (tastesim.engine)"
    )
    workers: int = Field(1, ge=1, le=4096, description="population shards (agent % workers); with ray, one actor each")
    address: str | None = Field(
        None, min_length=1, description="an existing Ray cluster's address (ray.init(address=...)); empty = start one"
    )

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ExecutionConfig:
        if self.address is not None and self.engine != "ray":
            raise ValueError("address is a Ray cluster's: set engine: ray, or remove address")
        return self


class ArmConfig(_Section):
    """One arm of a comparison: the same population and seed facing another recommender."""

    name: RunName = Field(description="names the arm's folder and its store")
    recommender: RecommenderConfig


class Scenario(_Section):
    """A whole simulation run."""

    name: RunName = Field("run", description="names the output folder and the Chroma collection")
    seed: int = Field(0, ge=0)
    steps: int = Field(20, gt=0, le=100_000)
    dataset: DatasetConfig = DatasetConfig(name="ml-100k")
    population: PopulationConfig = PopulationConfig()
    memory: MemoryConfig = MemoryConfig()
    analyser: AnalyserConfig = AnalyserConfig()
    recommender: RecommenderConfig = RecommenderConfig()
    decision: DecisionConfig = DecisionConfig()
    cache_dir: Path | None = Field(None, description="profile/embedding cache; $TASTESIM_CACHE or ~/.cache/tastesim")
    conversation: ConversationConfig | None = None
    drift: DriftConfig = DriftConfig()
    segments: SegmentsConfig = SegmentsConfig()
    shocks: list[Shock] = Field(default_factory=list, description="scheduled shocks (tastesim.world.shocks)")
    arms: list[ArmConfig] = Field(default_factory=list, description="recommenders compared on one population")
    execution: ExecutionConfig = ExecutionConfig()

    @model_validator(mode="after")
    def _distinct_arms(self) -> Scenario:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct, got {names}")
        return self

    @model_validator(mode="after")
    def _conversation_alone(self) -> Scenario:
        if self.conversation is not None and (self.arms or self.shocks):
            raise ValueError(
                "a conversation run holds dialogues with a CRS and has no slate steps: "
                "remove arms and shocks, or the conversation section"
            )
        return self

    def to_yaml(self) -> str:
        """The resolved scenario as YAML (paths absolute)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; ``str()`` is a message for the user."""


def _absolutise(data: dict, path: Path) -> dict:
    """Resolve relative paths in the raw mapping against the scenario file's folder."""
    for section, key in (("dataset", "path"), ("analyser", "profiles"), ("analyser", "reviews")):
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = _resolved(path, part[key], f"{section}.{key}")
    if isinstance(data.get("cache_dir"), str):
        data["cache_dir"] = _resolved(path, data["cache_dir"], "cache_dir")
    return data


def _printable(part: object) -> str:
    """A field name as it can be shown on one line (a key with control characters is quoted)."""
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _resolved(scenario: Path, value: str, field: str) -> str:
    """``value`` as an absolute path taken from the scenario's folder; an impossible path is an error."""
    try:
        return str((scenario.parent / value).resolve())
    except (ValueError, OSError) as err:  # an embedded NUL byte, a name longer than the system allows
        raise ScenarioError(f"{scenario}: {field}: not a usable path ({err})") from err


def _exists(path: Path, kind: str) -> bool:
    """Whether ``path`` is a folder (``kind`` "dir") or a file; a path the system refuses is neither."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False


_MAX_BYTES = 1 << 20  # a scenario is a small file; anything larger is a mistake (or an attack)
_MAX_NODES = 100_000  # values in the document, aliases expanded (a "billion laughs" alias bomb stops here)


def _read_document(path: Path) -> object:
    """The YAML document in ``path``, read safely (no Python tags), bounded in size, nesting and expansion."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ScenarioError(f"{path}: file not found") from err
    except IsADirectoryError as err:
        raise ScenarioError(f"{path}: is a folder, not a scenario file") from err
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read it: {err.strerror or err}") from err
    if len(data) > _MAX_BYTES:
        raise ScenarioError(f"{path}: {len(data):,} bytes; a scenario file is at most {_MAX_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ScenarioError(f"{path}:{line}: not UTF-8 text (byte {err.start})") from err
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = " ".join(part for part in (err.context, err.problem) if part)
        raise ScenarioError(f"{where}: not valid YAML: {what}") from err
    except yaml.YAMLError as err:
        raise ScenarioError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    except RecursionError as err:
        raise ScenarioError(f"{path}: nested too deeply to be a scenario") from err
    if _exceeds(document, [_MAX_NODES]):
        raise ScenarioError(f"{path}: more than {_MAX_NODES:,} values (aliases expanded); a scenario is far smaller")
    return document


def _exceeds(value: object, budget: list[int]) -> bool:
    """Whether ``value`` holds more than ``budget[0]`` values, counting shared (aliased) parts each time."""
    stack = [value]
    while stack:
        budget[0] -= 1
        if budget[0] < 0:
            return True
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return False


def load_scenario(path: Path, overrides: dict | None = None) -> Scenario:
    """Read and validate a scenario file; relative paths are taken from the file's folder.

    Raises:
        ScenarioError: With one line per problem, each naming the field (or the file and line).
    """
    path = Path(path)
    raw = _read_document(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping of fields, got {type(raw).__name__}")
    raw = _absolutise(raw, path)
    for key, value in (overrides or {}).items():
        raw[key] = value
    try:
        return Scenario.model_validate(raw)
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            field = ".".join(_printable(p) for p in problem["loc"]) or "(top level)"
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {field}: {message}")
        raise ScenarioError("\n".join(lines)) from err
