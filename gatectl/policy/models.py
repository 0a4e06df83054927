"""The policy model: what a release gate says, validated once, at load time.

Pydantic models with ``extra="forbid"`` (a typo must never silently disable a
gate). Conditions and triggers are parsed here, so a policy that loads is a
policy that can be evaluated. The CRD's openAPIV3Schema is generated from
these models (``gatectl.core.crd``).
"""

from __future__ import annotations

import itertools
import re
import weakref
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gatectl.policy.durations import MAX_POLICY_DURATION, format_duration, parse_duration
from gatectl.policy.expr import Condition, Trigger, parse_condition, parse_trigger

__all__ = [
    "BUILTIN_METRICS",
    "TEMPLATE_VARIABLES",
    "Approval",
    "CheckSettings",
    "Criterion",
    "ExposureSettings",
    "Gate",
    "GateSpec",
    "MetricDefinition",
    "ObjectKeyRef",
    "PatchTarget",
    "PrometheusAuth",
    "PrometheusCA",
    "PrometheusSettings",
    "TrafficSettings",
    "TriggerSpec",
    "WebhookSettings",
    "shared",
]

MAX_STEPS = 20
"""Steps a gate may have (the CRD says the same, so both modes agree)."""
_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

BUILTIN_METRICS: dict[str, Literal["rate", "count", "boolean"]] = {
    "exception_rate": "rate",
    "human_override_rate": "rate",
    "critical_regressions": "count",
    "reviewer_queue_sla_breach": "boolean",
}
"""The built-in catalog's metric names (PRODUCT.md §3) and what kind of value each has."""

TEMPLATE_VARIABLES = ("workflow", "window", "track")
"""The ``{{name}}`` placeholders a metric's query may use."""


def _seconds(value: object) -> float:
    if isinstance(value, str | int | float):
        return parse_duration(value, bare_unit="s", most=MAX_POLICY_DURATION)
    raise ValueError(f"expected a duration like '30s' or '5m', got {_kind(value)}")


def _hours(value: object) -> float:
    if isinstance(value, str | int | float):
        return parse_duration(value, bare_unit="h", most=MAX_POLICY_DURATION)
    raise ValueError(f"expected a duration like '48h' or a number of hours, got {_kind(value)}")


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


Seconds = Annotated[float, BeforeValidator(_seconds, json_schema_input_type=str | float)]
"""A duration in seconds; ``"30s"``, ``"5m"``, or a number of seconds."""
HoursOrDuration = Annotated[float, BeforeValidator(_hours, json_schema_input_type=str | float)]
"""A duration in seconds; ``"48h"``, ``"30m"``, or a number of hours."""

ParsedCondition = Annotated[
    Condition,
    BeforeValidator(parse_condition),
    PlainSerializer(lambda c: c.text, return_type=str),
    WithJsonSchema({"type": "string", "description": "OP VALUE, e.g. '<= 0.04', '== false'"}),
]
ParsedTrigger = Annotated[
    Trigger,
    BeforeValidator(parse_trigger),
    PlainSerializer(lambda t: t.text, return_type=str),
    WithJsonSchema(
        {"type": "string", "description": "METRIC OP VALUE, e.g. 'exception_rate > 0.06'"}
    ),
]


def _confidence_level(value: object) -> object:
    if value is None or value == "off":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number or 'off', got {value!r}")
    if not 0.5 < value < 1.0:
        raise ValueError(f"must be > 0.5 and < 1, got {value!r}")
    return float(value)


ConfidenceLevel = Annotated[
    float | Literal["off"],
    BeforeValidator(_confidence_level, json_schema_input_type=float | Literal["off"]),
]
"""A confidence level in (0.5, 1), or ``off`` for point values (PRODUCT.md §10)."""


class _Model(BaseModel):
    # Field docstrings document the fields and become the CRD's descriptions
    # (gatectl.core.crd reads them); pydantic's use_attribute_docstrings
    # would parse this module's source on every import, ~50 ms on the CLI path.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_M = TypeVar("_M", bound=BaseModel)
_SHARED: weakref.WeakValueDictionary[tuple[Any, ...], BaseModel] = weakref.WeakValueDictionary()
_FIELD_SETS: dict[frozenset[str], set[str]] = {}


def shared(model: _M) -> _M:
    """The one instance of ``model``'s value: equal frozen sub-models are one object.

    A fleet is made from a few templates, so its gates' criteria, triggers and
    settings repeat: 10,000 copies of each would be most of what the policies
    weigh. Models are frozen (and nothing mutates their dicts or lists), so an
    instance can be shared; two are the same value when their JSON and the
    fields they were given are. Kept weakly: a value no gate uses any more goes.
    """
    key = (type(model), model.model_dump_json(), frozenset(model.model_fields_set))
    # No lock (the policy layer starts no threads): two loaders racing may keep two equal
    # instances, which is only less sharing.
    found = _SHARED.setdefault(key, model)
    return found  # type: ignore[return-value]


def _shared_fields_set(model: BaseModel) -> None:
    """One ``model_fields_set`` for every model given the same fields (never mutated: frozen
    models have no ``__setattr__``, and ``model_copy`` copies it)."""
    fields = frozenset(model.model_fields_set)
    one = _FIELD_SETS.get(fields)
    if one is None and len(_FIELD_SETS) < 4096:
        one = _FIELD_SETS.setdefault(fields, set(fields))
    if one is not None:
        object.__setattr__(model, "__pydantic_fields_set__", one)


class CheckSettings(_Model):
    """Per-check controls shared by criteria and triggers."""

    confidence: ConfidenceLevel | None = None
    """Confidence level for rate bounds, or ``off`` (overrides the gate's ``confidence``)."""
    dry_run: bool = False
    """Evaluated, reported and exported, never enforced."""
    on_no_data: Literal["hold", "fallback"] | None = None
    """What no data means for this check (overrides the gate's ``on_no_data``)."""


class Criterion(CheckSettings):
    """A success criterion: the metric's value must satisfy ``condition``."""

    condition: ParsedCondition


class TriggerSpec(CheckSettings):
    """A rollback trigger: when ``expression`` is true the gate falls back."""

    expression: ParsedTrigger


def _criterion(value: object) -> object:
    return value if isinstance(value, dict | BaseModel) else {"condition": value}


def _trigger(value: object) -> object:
    return value if isinstance(value, dict | BaseModel) else {"expression": value}


CriterionField = Annotated[
    Criterion, BeforeValidator(_criterion, json_schema_input_type=str | Criterion)
]
"""``"<= 0.04"`` or ``{condition: "<= 0.04", confidence: 0.95, ...}``."""
TriggerField = Annotated[
    TriggerSpec, BeforeValidator(_trigger, json_schema_input_type=str | TriggerSpec)
]
"""``"exception_rate > 0.06"`` or ``{expression: "...", dry_run: true, ...}``."""


class MetricDefinition(_Model):
    """A metric's query: ``{query}`` (number or boolean) or ``{numerator, denominator}`` (rate).

    Templates may use ``{{workflow}}``, ``{{window}}`` and ``{{track}}``;
    values are escaped before substitution.
    """

    query: str | None = None
    """PromQL giving one number (or 0/1 for a boolean)."""
    numerator: str | None = None
    """PromQL for a rate's event count (with ``denominator``)."""
    denominator: str | None = None
    """PromQL for a rate's request count; also the metric's sample count."""

    @field_validator("query", "numerator", "denominator")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("a query must not be empty")
        for match in _TEMPLATE.finditer(value):
            if match.group(1) not in TEMPLATE_VARIABLES:
                raise ValueError(
                    f"unknown template variable {match.group(0)!r}"
                    " (known: {{workflow}}, {{window}}, {{track}})"
                )
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MetricDefinition:
        has_query = self.query is not None
        has_rate = self.numerator is not None or self.denominator is not None
        if has_query and has_rate:
            raise ValueError("give either query, or numerator and denominator, not both")
        if not has_query and not has_rate:
            raise ValueError("needs query, or numerator and denominator")
        if has_rate and (self.numerator is None or self.denominator is None):
            raise ValueError("a rate needs both numerator and denominator")
        return self

    @property
    def is_rate(self) -> bool:
        """True for the ``{numerator, denominator}`` form."""
        return self.numerator is not None


_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_K8S_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


class ObjectKeyRef(_Model):
    """One key of a Secret or ConfigMap in the gate's own namespace."""

    name: str
    """The Secret's (or ConfigMap's) name."""
    key: str
    """The key inside it."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _K8S_NAME.match(value):
            raise ValueError(f"must be a Kubernetes object name, got {value[:60]!r}")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _K8S_KEY.match(value):
            raise ValueError(f"must be a Secret/ConfigMap key ([-._a-zA-Z0-9]), got {value[:60]!r}")
        return value


class PrometheusAuth(_Model):
    """Credentials a ReleaseGate brings for its own Prometheus: a Secret in its namespace."""

    secret_ref: ObjectKeyRef = Field(validation_alias="secretRef", serialization_alias="secretRef")
    """The Secret key holding a bearer token."""


class PrometheusCA(_Model):
    """The CA bundle (PEM) that signs the Prometheus' certificate: a Secret or a ConfigMap key."""

    secret_ref: ObjectKeyRef | None = Field(
        default=None, validation_alias="secretRef", serialization_alias="secretRef"
    )
    """A Secret key holding the PEM bundle."""
    config_map_ref: ObjectKeyRef | None = Field(
        default=None, validation_alias="configMapRef", serialization_alias="configMapRef"
    )
    """A ConfigMap key holding the PEM bundle."""

    @model_validator(mode="after")
    def _one(self) -> PrometheusCA:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError("needs exactly one of secretRef and configMapRef")
        return self


class ExposureSettings(_Model):
    """The check that the canary really gets the share gatectl set (PRODUCT.md §10)."""

    enabled: bool = True
    """Check the observed canary share against the share set (on by default: PRODUCT.md §10)."""
    tolerance: float = Field(default=0.2, gt=0.0, lt=1.0, strict=True)
    """Relative deviation allowed: 0.2 accepts 8-12 % when 10 % was set."""
    grace: Seconds = 600.0
    """How long no canary request at all is accepted while the share is above 0."""
    required: bool = False
    """Hold when there is no ``baseline`` track to check against (else a note)."""
    on_mismatch: Literal["hold", "fallback"] = "hold"
    """What a mismatch leads to."""


class PrometheusSettings(_Model):
    """Where to read metrics from and how to authenticate."""

    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    auth: PrometheusAuth | None = None
    """Kubernetes: a bearer token from a Secret in the gate's namespace (not a file path)."""
    ca: PrometheusCA | None = None
    """Kubernetes: the CA bundle from a Secret or ConfigMap in the gate's namespace."""
    timeout: Seconds = 10.0
    partial_response: Literal["deny", "allow"] = "deny"
    """``deny``: an answer with warnings (or Thanos-style ``isPartial``) is no data."""
    query_offset: Seconds = 0.0
    """Every query reads as of ``now - query_offset`` (data still being ingested)."""
    scrape_interval: Seconds = 15.0
    """How often the workflow's metrics are scraped; a step warms up for two of them."""
    max_staleness: Seconds = 300.0
    """Data whose newest canary request sample is older than this is no data (stale)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            # Never echo a value with user info in it: it may carry a password.
            got = "" if "@" in value else f", got {value!r}"
            raise ValueError(f"must be an http:// or https:// URL{got}")
        return value

    @staticmethod
    def header_problem(name: str, value: str) -> str | None:
        """Why HTTP cannot send header ``name: value``, naming the header, never its value."""
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            return f"header name {name[:40]!r} is not a valid HTTP header name"
        if not re.fullmatch(r"[\t\x20-\x7e]*", value):
            return (
                f"header {name!r}: the value must be printable ASCII"
                " (no line breaks, control or non-ASCII characters)"
            )
        return None

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        for name, content in value.items():
            if not isinstance(name, str) or not isinstance(content, str):
                raise ValueError(f"header {str(name)[:40]!r}: name and value must be strings")
            problem = cls.header_problem(name, content)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("scrape_interval", "max_staleness")
    @classmethod
    def _freshness_durations(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be longer than 0, got {value:g}s")
        return value

    @model_validator(mode="after")
    def _staleness_spans_scrapes(self) -> PrometheusSettings:
        if self.max_staleness < 2 * self.scrape_interval:
            raise ValueError(
                f"max_staleness ({format_duration(self.max_staleness)}) must be at least twice"
                f" scrape_interval ({format_duration(self.scrape_interval)}): between two"
                " scrapes the data would look stale"
            )
        return self

    @field_validator("query_offset")
    @classmethod
    def _offset(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"must not be negative, got {value:g}s")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be longer than 0, got {value:g}s")
        return value


class Approval(_Model):
    """Promoting past ``required_above`` needs a human approval."""

    required_above: float = Field(ge=0.0, lt=1.0, strict=True)


_POINTER = re.compile(r"^(/([^/~]|~[01])*)+$")


def _pointer(value: str) -> str:
    """An RFC 6901 JSON pointer into the object, e.g. ``/spec/http/0/route/0/weight``."""
    if not _POINTER.match(value):
        raise ValueError(
            f"expected a JSON pointer like /spec/http/0/route/0/weight, got {value[:60]!r}"
        )
    if value.split("/")[1] in ("apiVersion", "kind", "metadata", "status"):
        raise ValueError(f"{value[:60]!r} points outside the object's spec")
    return value


JsonPointer = Annotated[str, BeforeValidator(_pointer)]


class PatchTarget(_Model):
    """The object whose weights ``traffic.kind: patch`` sets (in the gate's namespace)."""

    api_version: str = Field(alias="apiVersion")
    """``GROUP/VERSION`` (``networking.istio.io/v1``), or ``v1`` for the core group."""
    kind: str
    """The object's kind, e.g. ``VirtualService``."""
    name: str = Field(min_length=1)
    """The object's name."""

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not re.fullmatch(r"([a-z0-9.-]+/)?v[0-9a-z]+", value):
            raise ValueError(
                f"expected GROUP/VERSION like networking.istio.io/v1 (or v1), got {value[:60]!r}"
            )
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", value):
            raise ValueError(f"expected a kind like VirtualService, got {value[:60]!r}")
        return value


class TrafficSettings(_Model):
    """How the controller applies the share (``spec.traffic``)."""

    kind: Literal[
        "configmap", "httproute", "deployment", "file", "openfeature", "patch", "none"
    ] = "none"
    name: str | None = None
    """ConfigMap / HTTPRoute / FeatureFlag name; for ``deployment``, the canary Deployment."""
    namespace: str | None = None
    """Defaults to the gate's namespace."""
    key: str = "share"
    """ConfigMap key prefix (``share``, ``mode``)."""
    path: str | None = None
    """``file``: the JSON file a router reads; ``openfeature`` in file mode: the flagd flag file."""
    ai_backend: str | None = None
    """``httproute``: the backendRef name of the AI path."""
    deterministic_backend: str | None = None
    """``httproute``: the backendRef name of the deterministic path."""
    stable_deployment: str | None = None
    """``deployment``: the stable (deterministic) Deployment."""
    total_replicas: int | None = Field(default=None, ge=1, strict=True)
    """``deployment``: replicas split between canary and stable."""
    flag: str | None = Field(default=None, min_length=1)
    """``openfeature``: the flag key whose ``fractional`` weights are set."""
    ai_variant: str | None = Field(default=None, min_length=1)
    """``openfeature``: the variant that is the AI path."""
    deterministic_variant: str | None = Field(default=None, min_length=1)
    """``openfeature``: the variant that is the deterministic path (all traffic at share 0)."""
    source: Literal["file", "configmap", "featureflag"] | None = None
    """``openfeature``: where the flag lives: a flag file (``path``, file mode), a ConfigMap
    holding one (``name``, ``data_key``) or an OpenFeature Operator FeatureFlag (``name``).
    Default: ``file`` when ``path`` is set, else ``configmap``."""
    data_key: str = Field(default="flags.flagd.json", min_length=1)
    """``openfeature`` with ``source: configmap``: the data key holding the flag file (JSON)."""
    target: PatchTarget | None = None
    """``patch``: the object to set the two weights in."""
    ai_weight: JsonPointer | None = None
    """``patch``: JSON pointer to the AI path's weight, e.g. ``/spec/http/0/route/0/weight``."""
    deterministic_weight: JsonPointer | None = None
    """``patch``: JSON pointer to the deterministic path's weight."""
    total: int = Field(default=100, ge=1, le=1_000_000, strict=True)
    """``openfeature`` and ``patch``: the two weights add up to this (100: percent)."""

    @model_validator(mode="after")
    def _required(self) -> TrafficSettings:
        need: dict[str, tuple[str, ...]] = {
            "configmap": ("name",),
            "httproute": ("name", "ai_backend", "deterministic_backend"),
            "deployment": ("name", "stable_deployment", "total_replicas"),
            "file": ("path",),
            "openfeature": ("flag", "ai_variant", "deterministic_variant"),
            "patch": ("target", "ai_weight", "deterministic_weight"),
            "none": (),
        }
        missing = [f for f in need[self.kind] if getattr(self, f) is None]
        if self.kind == "openfeature":
            where = "path" if self.flag_source == "file" else "name"
            if getattr(self, where) is None:
                missing.append(where)
        if missing:
            raise ValueError(f"kind {self.kind} needs {', '.join(missing)}")
        if self.kind == "openfeature" and self.ai_variant == self.deterministic_variant:
            raise ValueError("ai_variant and deterministic_variant must differ")
        if self.kind == "patch" and self.ai_weight == self.deterministic_weight:
            raise ValueError("ai_weight and deterministic_weight must be different pointers")
        return self

    @property
    def flag_source(self) -> str:
        """``openfeature``: ``file``, ``configmap`` or ``featureflag`` (``source`` or default)."""
        if self.source is not None:
            return self.source
        return "file" if self.path is not None else "configmap"


class WebhookSettings(_Model):
    """A JSON POST on every change of decision."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Seconds = 5.0
    secret_ref: ObjectKeyRef | None = Field(
        default=None, validation_alias="secretRef", serialization_alias="secretRef"
    )
    """Kubernetes: the HMAC-SHA256 key (a Secret key in the gate's namespace) that signs
    each body in ``X-Gatectl-Signature``; required there."""
    signing_key_file: str | None = None
    """File mode: a file holding the HMAC-SHA256 key that signs each body."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return PrometheusSettings._url(value) or value

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: object) -> object:
        return PrometheusSettings._headers(value)


class GateSpec(_Model):
    """Everything a release gate says (the bare form, or ``spec`` of a ReleaseGate)."""

    name: str | None = None
    """The gate's name (bare form; else the file's stem)."""
    workflow: str | None = None
    """Value of the ``workflow`` label in metrics (else the gate's name)."""
    # strict: a number must be written as a number (no "0.1" strings, no booleans)
    canary_traffic: float = Field(gt=0.0, le=1.0, strict=True)
    """The first share of traffic on the AI path, 0 < x <= 1."""
    steps: list[Annotated[float, Field(gt=0.0, le=1.0, strict=True)]] | None = None
    """Ascending shares, the first equal to canary_traffic, the last 1.0."""
    promotion_window: HoursOrDuration = Field(
        validation_alias="promotion_window", serialization_alias="promotion_window"
    )
    """Healthy time needed at each step before promoting: '6h', '30m', or hours."""
    success_criteria: dict[str, CriterionField]
    """Metric name -> condition every promotion needs."""
    rollback_trigger: list[TriggerField] = Field(default_factory=list)
    """'METRIC OP VALUE' expressions; any true falls back."""
    fallback_mode: Literal["deterministic_path", "previous_step"] = "deterministic_path"
    """Where a fallback goes: share 0, or the previous step."""
    min_samples: int = Field(default=100, ge=0, strict=True)
    """Canary requests needed in the window before promoting."""
    on_no_data: Literal["hold", "fallback"] = "hold"
    """What missing data leads to (fallback after max_inconclusive evaluations)."""
    max_inconclusive: int = Field(default=10, ge=1, strict=True)
    """Inconclusive evaluations in a row before on_no_data: fallback applies."""
    confidence: ConfidenceLevel = 0.95
    """Confidence level of the sequences that decide rates; ``off``: compare point values."""
    evaluation_interval: Seconds = 60.0
    """The controller's period between evaluations."""
    metrics: dict[str, MetricDefinition] = Field(default_factory=dict)
    """Metric name -> own query definition (overrides the built-in catalog)."""
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    """Where to read metrics (the CLI flag and environment take precedence)."""
    owner: str | None = None
    """Who owns the promotion decision."""
    escalation: str | None = None
    """Who is paged when the gate falls back."""
    approval: Approval | None = None
    """Human approval needed to promote past a share."""
    traffic: TrafficSettings | None = None
    """How the controller applies the share."""
    webhook: WebhookSettings | None = None
    """A JSON POST on every change of decision."""
    paused: bool = False
    """A paused gate is not evaluated."""
    exposure: ExposureSettings = Field(default_factory=ExposureSettings)
    """The sample-ratio-mismatch check: is the canary getting the share set?"""
    revision: str | None = Field(default=None, min_length=1, max_length=253)
    """The AI path's version (model, prompt, image, git sha). A new value starts a new
    rollout at step 1 and clears a fallback; editing any other field never does."""

    @model_validator(mode="before")
    @classmethod
    def _window_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "promotion_window_hours" in data:
            if "promotion_window" in data:
                raise ValueError("give promotion_window or promotion_window_hours, not both")
            data = dict(data)
            data["promotion_window"] = data.pop("promotion_window_hours")
        return data

    @model_validator(mode="after")
    def _share(self) -> GateSpec:
        """Equal sub-models of different gates become one instance (``shared``)."""
        fields = self.__dict__
        fields["success_criteria"] = {k: shared(v) for k, v in self.success_criteria.items()}
        fields["rollback_trigger"] = [shared(t) for t in self.rollback_trigger]
        fields["metrics"] = {k: shared(v) for k, v in self.metrics.items()}
        for name in ("prometheus", "exposure", "approval", "traffic", "webhook"):
            if isinstance(fields[name], BaseModel):
                fields[name] = shared(fields[name])
        _shared_fields_set(self)
        return self

    @field_validator("promotion_window", "evaluation_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0")
        return value

    @field_validator("workflow", "name")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if steps is None:
            return steps
        if not steps:
            raise ValueError("must not be empty")
        if len(steps) > MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS} steps, got {len(steps)}")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"must be strictly ascending, got {steps}")
        if steps[-1] != 1.0:
            raise ValueError(f"the last step must be 1.0, got {steps[-1]}")
        canary = info.data.get("canary_traffic")
        if canary is not None and steps[0] != canary:
            raise ValueError(f"the first step must equal canary_traffic ({canary}), got {steps[0]}")
        return steps

    @field_validator("success_criteria")
    @classmethod
    def _criteria(cls, value: dict[str, Criterion]) -> dict[str, Criterion]:
        if not value:
            raise ValueError("needs at least one criterion")
        for metric in value:
            if not _METRIC_NAME.match(metric):
                raise ValueError(f"metric name {metric!r} is not a valid identifier")
        return value

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: dict[str, MetricDefinition]) -> dict[str, MetricDefinition]:
        for metric in value:
            if not _METRIC_NAME.match(metric):
                raise ValueError(f"metric name {metric!r} is not a valid identifier")
        return value

    @property
    def shares(self) -> tuple[float, ...]:
        """The step shares, first to last (last is 1.0)."""
        if self.steps is not None:
            return tuple(self.steps)
        if self.canary_traffic >= 1.0:
            return (1.0,)
        return (self.canary_traffic, 1.0)

    def metric_names(self) -> list[str]:
        """Every metric a criterion or trigger reads, in policy order, once each."""
        names: list[str] = list(self.success_criteria)
        for trigger in self.rollback_trigger:
            if trigger.expression.metric not in names:
                names.append(trigger.expression.metric)
        return names


class Gate(_Model):
    """A loaded gate: its identity, its spec, and where it came from."""

    name: str
    namespace: str = "default"
    spec: GateSpec
    source: str = ""
    """``file:line`` of the document, or ``namespace/name`` on Kubernetes."""
    generation: int | None = None

    @model_validator(mode="after")
    def _share(self) -> Gate:
        _shared_fields_set(self)
        return self

    @property
    def workflow(self) -> str:
        """The ``workflow`` label value (spec.workflow, else the gate's name)."""
        return self.spec.workflow or self.name

    @property
    def key(self) -> str:
        """``namespace/name``: unique per controller."""
        return f"{self.namespace}/{self.name}"

    @property
    def revision(self) -> str | None:
        """The declared revision of the AI path (``spec.revision``); ``None`` if undeclared."""
        return self.spec.revision
