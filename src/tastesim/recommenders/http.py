"""A recommender under test reached over HTTP, learning from the simulated feedback.

The contract (JSON, item and agent ids as strings; ``BASE`` is ``recommender.url``):

* ``POST BASE/recommend`` ``{"step": 3, "k": 10, "agents": ["0", "1"], "users": ["196", "186"],
  "exclude": [["242", "302"], ["50"]]}`` -> ``{"slates": [["98", "12", ...], [...]]}``: one slate per agent,
  best first (``exclude`` lists what each agent may not be shown: what it consumed, and items not launched yet;
  ``users`` the real user behind each agent).
* ``POST BASE/feedback`` ``{"step": 3, "agents": [...], "slates": [[...]], "click": [[true, ...]],
  "like": [[...]], "dislike": [[...]]}`` -> any 2xx: what every agent did with its slate (``slates`` as
  shown, empty slots omitted; the decision lists align with them).
* ``POST BASE/fit`` ``{"step": 10}`` -> any 2xx: sent every ``retrain_every`` steps when the scenario sets it.

Transient failures (refused connections, HTTP 503) are retried with backoff; anything else stops the run
with a :class:`RecommenderError` that names the endpoint (the run folder stays resumable).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from tastesim.recommenders.base import Feedback, SlateRequest

__all__ = ["HttpRecommender", "RecommenderError"]


class RecommenderError(RuntimeError):
    """The recommender service failed; ``str()`` says which call and why."""


class _Slates(BaseModel):
    model_config = ConfigDict(extra="ignore")

    slates: list[list[str | int]]


def _transient(err: BaseException) -> bool:
    if isinstance(err, httpx.ConnectError):
        return True
    return isinstance(err, httpx.HTTPStatusError) and err.response.status_code == 503


class HttpRecommender:
    """The client side of the contract above (synchronous: the step waits for the slates).

    Args:
        url: Base URL of the service.
        item_ids: Catalog item ids in row order.
        users: Real user id behind each agent.
        timeout_s: Seconds per request.
        retries: Retries of a refused connection or a 503.
    """

    name = "http"

    def __init__(
        self, url: str, item_ids: Sequence[str], users: Sequence[str], *, timeout_s: float = 30.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.item_ids = list(item_ids)
        self.users = [str(u) for u in users]
        self._row = {item: i for i, item in enumerate(self.item_ids)}
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        self._retry = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )
        self._step = 0

    def _post(self, path: str, body: dict) -> httpx.Response:
        def send() -> httpx.Response:
            response = self._client.post(self.url + path, json=body)
            response.raise_for_status()
            return response

        try:
            return self._retry(send)
        except httpx.HTTPStatusError as err:
            raise RecommenderError(
                f"the recommender at {self.url}{path} answered HTTP {err.response.status_code}: "
                f"{err.response.text[:200]}"
            ) from err
        except httpx.HTTPError as err:
            raise RecommenderError(f"the recommender at {self.url}{path} failed: {type(err).__name__}: {err}") from err

    def fit(self, interactions: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Ask the service to refit (the service keeps what it observed; nothing is sent before step 1)."""
        if self._step > 0:
            self._post("/fit", {"step": self._step})

    def recommend(self, request: SlateRequest) -> np.ndarray:
        """One POST for every agent of the step; unknown item ids become empty slots."""
        self._step = request.step
        exclude = [[self.item_ids[i] for i in np.flatnonzero(row)] for row in request.blocked]
        body = {
            "step": request.step,
            "k": request.k,
            "agents": [str(a) for a in request.agents],
            "users": [self.users[a] for a in request.agents],
            "exclude": exclude,
        }
        response = self._post("/recommend", body)
        try:
            slates = _Slates.model_validate(response.json()).slates
        except (ValueError, ValidationError) as err:
            raise RecommenderError(f"the recommender at {self.url}/recommend sent a malformed reply: {err}") from err
        if len(slates) != len(request.agents):
            raise RecommenderError(
                f"the recommender at {self.url}/recommend sent {len(slates)} slates for {len(request.agents)} agents"
            )
        out = np.full((len(slates), request.k), -1, dtype=np.int64)
        for row, slate in enumerate(slates):
            known = [self._row.get(str(i), -1) for i in slate[: request.k]]
            out[row, : len(known)] = known
        return out

    def observe(self, feedback: Feedback) -> None:
        """Send the step's decisions, slot by slot as shown (empty slots left out)."""
        shown = feedback.slates >= 0

        def rows(values: np.ndarray) -> list[list]:
            return [values[r][shown[r]].tolist() for r in range(len(values))]

        self._post(
            "/feedback",
            {
                "step": feedback.step,
                "agents": [str(a) for a in feedback.agents],
                "slates": [[self.item_ids[i] for i in row] for row in rows(feedback.slates)],
                "click": rows(feedback.click),
                "like": rows(feedback.like),
                "dislike": rows(feedback.dislike),
            },
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
