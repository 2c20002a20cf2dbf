"""Reading a fleet report back from its file: every problem located (``FILE:LINE:COL`` for bad JSON,
``FILE: path.to.key: message`` for a bad field), so ``gatewayd fleet report`` says which shard's file is
wrong and where, instead of adding up garbage or failing with a traceback.

The models check what a merge relies on (counts are whole numbers, histograms have one count per bucket,
shard numbers are within the shard count, times are ISO 8601 with a zone); keys they do not know are
ignored, so a report with more fields still merges.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from gatewayd.errors import ConfigError, ConfigProblem
from gatewayd.fleet.report import FORMAT


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class _Histogram(_Model):
    count: NonNegativeInt
    sum_s: float
    counts: list[NonNegativeInt]


class _Latency(_Model):
    bounds_s: list[float]
    all: _Histogram
    by_operation: dict[str, _Histogram]

    @model_validator(mode="after")
    def _one_count_per_bucket(self) -> _Latency:
        buckets = len(self.bounds_s) + 1
        for name, histogram in [("all", self.all), *self.by_operation.items()]:
            if len(histogram.counts) != buckets:
                raise ValueError(f"{name}: {len(histogram.counts)} counts for {buckets} buckets")
        return self


class _Shards(_Model):
    count: PositiveInt
    included: list[NonNegativeInt]

    @model_validator(mode="after")
    def _within_count(self) -> _Shards:
        outside = [i for i in self.included if i >= self.count]
        if outside:
            raise ValueError(f"shards {outside} are not below the shard count {self.count}")
        return self


class _Gateways(_Model):
    total: NonNegativeInt
    registered: NonNegativeInt
    by_status: dict[str, NonNegativeInt]


class _Points(_Model):
    sampled: NonNegativeInt
    delivered: NonNegativeInt
    lost: NonNegativeInt
    dead_lettered: NonNegativeInt
    pending: NonNegativeInt


class _Report(_Model):
    format: str
    fleet: str
    shards: _Shards
    started_at: str
    ended_at: str
    gateways: _Gateways
    points: _Points
    statuses_sent: NonNegativeInt
    errors_by_kind: dict[str, NonNegativeInt]
    latency: _Latency

    @field_validator("format")
    @classmethod
    def _this_version(cls, text: str) -> str:
        if text != FORMAT:
            raise ValueError(f"not a fleet report of this version: {text!r} (expected {FORMAT!r})")
        return text

    @field_validator("started_at", "ended_at")
    @classmethod
    def _iso_time(cls, text: str) -> str:
        try:
            zone = datetime.fromisoformat(text).tzinfo
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {text!r}") from None
        if zone is None:
            raise ValueError(f"a time without a zone: {text!r}")
        return text


def check_report(data: Any, file: str) -> dict[str, Any]:
    """``data`` (a report as loaded from JSON) when it is one; a ConfigError with every problem else."""
    try:
        _Report.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(file, error) for error in exc.errors(include_url=False)]) from None
    assert isinstance(data, dict)  # the model accepted it
    return data


def load_report(path: str) -> dict[str, Any]:
    """The report in the file at ``path``, checked."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigProblem(path, None, None, "", f"cannot read the report: {reason}")]
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigProblem(path, exc.lineno, exc.colno, "", f"not JSON: {exc.msg}")]) from None
    return check_report(data, path)


def _problem(file: str, error: Any) -> ConfigProblem:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        message = "required key is missing"
    else:
        message = str(error["msg"]).replace("Value error, ", "")
        message = message[0].lower() + message[1:]
    return ConfigProblem(file, None, None, path, message)
