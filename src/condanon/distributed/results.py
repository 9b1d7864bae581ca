"""What a cluster worker sends back for one input: its `Outcome`, and the node that ran it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..errors import show_path
from ..workers import Outcome


@dataclass(frozen=True)
class Done:
    """One input finished on the cluster: its place in the caller's list, what came of it, the node that ran it."""

    index: int
    outcome: Outcome
    node: str | None = None


def encode(outcome: Outcome) -> str:
    """Return ``outcome`` as one JSON text (a column of a Ray Data batch)."""
    return json.dumps(asdict(outcome))


def decode(text: str) -> Outcome:
    """Return the `Outcome` that `encode` wrote."""
    return Outcome(**json.loads(text))


def lost(source: str, attempts: int) -> Outcome:
    """Return the outcome of an input whose worker died on every attempt: an error for this input only."""
    return Outcome(
        error=f"{show_path(source)}: the Ray worker running it died {attempts} times (killed, or out of memory); "
        "nothing was written for it, and the next run of the job tries it again"
    )
