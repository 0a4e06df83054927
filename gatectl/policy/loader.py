"""Reading policy files into gates, with every problem as ``file:line: field.path: message``.

Policies come as files, directories of files, several YAML documents per
file, in the bare ``workflow_release_gate:`` form or as ``ReleaseGate``
objects (PRODUCT.md §2); on Kubernetes they come from the API server instead
(``gate_from_resource``). Problems are values (``PolicyError``), collected
rather than raised, so ``gatectl validate`` can list every one of them and a
controller can mark one bad gate without stopping the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from gatectl.errors import PolicyError
from gatectl.policy.checks import spec_problems
from gatectl.policy.messages import did_you_mean, human_message, show
from gatectl.policy.models import Gate, GateSpec
from gatectl.policy.yamlmarks import Document, Path, YamlProblem, load_documents

__all__ = [
    "API_VERSION",
    "BARE_KEY",
    "KIND",
    "LoadResult",
    "gate_from_resource",
    "load_gates",
    "load_policies",
]

API_VERSION = "gatectl.io/v1alpha1"
KIND = "ReleaseGate"
BARE_KEY = "workflow_release_gate"
_TOP_KEYS = ["apiVersion", "kind", "metadata", "spec", "status"]
_ALIASES = {"GateSpec": ["promotion_window_hours"]}
_SUFFIXES = (".yaml", ".yml")
_ONLY_BARE = f" (a bare policy holds only {BARE_KEY}:)"
_MAX_BYTES = 10 * 1024 * 1024


@dataclass
class LoadResult:
    """What a load produced: the valid gates and every problem found."""

    gates: list[Gate] = field(default_factory=list)
    problems: list[PolicyError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was wrong."""
        return not self.problems


def load_policies(paths: Sequence[str | os.PathLike[str]]) -> LoadResult:
    """Every gate in ``paths`` (files, or directories of ``*.yaml``/``*.yml``), and every problem.

    Never raises for bad input: unreadable files, YAML syntax errors and
    invalid fields all become ``problems``. Gate names must be unique per
    load (``namespace/name``); a second gate with a taken name is a problem.
    """
    result = LoadResult()
    seen: dict[str, str] = {}
    for raw in paths:
        files, problem = _expand(os.fspath(raw))
        if problem is not None:
            result.problems.append(problem)
        for file in files:
            gates, problems = _load_file(file)
            result.problems.extend(problems)
            for gate, where in gates:
                first = seen.get(gate.key)
                if first is not None:
                    result.problems.append(
                        PolicyError(
                            f"duplicate gate {gate.key!r} (also at {first})",
                            file=file,
                            line=where[0],
                            path=where[1],
                        )
                    )
                    continue
                seen[gate.key] = gate.source
                result.gates.append(gate)
    return result


def load_gates(paths: Sequence[str | os.PathLike[str]]) -> list[Gate]:
    """Like ``load_policies``, but raises the first ``PolicyError`` if there is any problem."""
    result = load_policies(paths)
    if result.problems:
        raise result.problems[0]
    return result.gates


def gate_from_resource(obj: Mapping[str, Any], *, source: str) -> Gate:
    """A ``ReleaseGate`` object read from the Kubernetes API as a ``Gate``.

    Raises ``PolicyError`` (``source: spec.x: message``, no line) for the
    first problem; the message counts the others.
    """
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        raise PolicyError("required field missing", file=source, path="metadata.name")
    name = str(metadata["name"])
    namespace = metadata.get("namespace") or "default"
    generation = metadata.get("generation")
    spec_data = obj.get("spec")
    if not isinstance(spec_data, Mapping):
        message = "required field missing" if spec_data is None else "must be a mapping"
        raise PolicyError(message, file=source, path="spec")
    spec, problems = _validate_spec(spec_data, prefix=("spec",), doc=None, file=source)
    if spec is None or problems:
        first = problems[0]
        if len(problems) > 1:
            more = len(problems) - 1
            first = PolicyError(
                f"{first.message} (and {more} more problem{'s' if more > 1 else ''})",
                file=source,
                path=first.path,
            )
        raise first
    return Gate(
        name=name,
        namespace=str(namespace),
        spec=spec,
        source=source,
        generation=generation if isinstance(generation, int) else None,
    )


def _expand(path: str) -> tuple[list[str], PolicyError | None]:
    """The policy files ``path`` names (a directory: its YAML files, sorted, not recursive)."""
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            return [], PolicyError(f"cannot read directory: {exc.strerror}", file=path)
        files = [
            os.path.join(path, n)
            for n in names
            if n.endswith(_SUFFIXES) and os.path.isfile(os.path.join(path, n))
        ]
        if not files:
            return [], PolicyError("no policies here (no *.yaml or *.yml files)", file=path)
        return files, None
    return [path], None


def _read(file: str) -> tuple[str | None, PolicyError | None]:
    try:
        with open(file, "rb") as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None, PolicyError("file not found", file=file)
    except IsADirectoryError:
        return None, PolicyError("is a directory", file=file)
    except OSError as exc:
        return None, PolicyError(f"cannot read file: {exc.strerror or exc}", file=file)
    if len(raw) > _MAX_BYTES:
        return None, PolicyError("file too large (over 10 MiB)", file=file)
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, PolicyError(f"not UTF-8 text (byte {exc.start})", file=file)


_Located = tuple[Gate, tuple[int | None, str | None]]


def _load_file(file: str) -> tuple[list[_Located], list[PolicyError]]:
    text, problem = _read(file)
    if problem is not None or text is None:
        return [], [problem] if problem else []
    gates: list[_Located] = []
    problems: list[PolicyError] = []
    documents = 0
    try:
        for doc in load_documents(text):
            if doc.data is None:
                continue
            documents += 1
            gate, where, errors = _from_document(doc, file=file)
            problems.extend(errors)
            if gate is not None:
                gates.append((gate, where))
    except YamlProblem as exc:
        problems.append(
            PolicyError(exc.message, file=file, line=exc.line, path=_dotted(exc.path) or None)
        )
        return gates, problems
    if documents == 0:
        problems.append(PolicyError("empty file: no policy in it", file=file))
    return gates, problems


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path if p != "[key]")


def _from_document(
    doc: Document, *, file: str
) -> tuple[Gate | None, tuple[int | None, str | None], list[PolicyError]]:
    data = doc.data
    here: tuple[int | None, str | None] = (doc.line, None)

    def error(path: Path, message: str) -> PolicyError:
        return PolicyError(message, file=file, line=doc.line_of(path), path=_dotted(path) or None)

    if not isinstance(data, dict):
        return None, here, [error((), f"a policy must be a mapping, got {show(data)}")]
    if BARE_KEY in data:
        extra = [k for k in data if k != BARE_KEY]
        problems = [
            error((k,), f"unknown field{did_you_mean(k, [BARE_KEY]) or _ONLY_BARE}") for k in extra
        ]
        body = data[BARE_KEY]
        if not isinstance(body, dict):
            return (
                None,
                here,
                [*problems, error((BARE_KEY,), f"must be a mapping, got {show(body)}")],
            )
        spec, errors = _validate_spec(body, prefix=(BARE_KEY,), doc=doc, file=file)
        problems += errors
        if spec is None or problems:
            return None, here, problems
        name = spec.name or FsPath(file).stem
        where = (doc.line_of((BARE_KEY, "name")), f"{BARE_KEY}.name" if spec.name else None)
        source = f"{file}:{doc.line}"
        return Gate(name=name, spec=spec, source=source), where, []
    if "apiVersion" not in data and "kind" not in data:
        keys = [str(k) for k in data]
        hint = next((h for k in keys if (h := did_you_mean(k, [BARE_KEY, "apiVersion"]))), "")
        return (
            None,
            here,
            [
                error(
                    (),
                    f"not a policy: expected {BARE_KEY}: or apiVersion: {API_VERSION}"
                    f" with kind: {KIND}{hint}",
                )
            ],
        )
    return _from_resource_document(doc, file=file, error=error)


def _from_resource_document(
    doc: Document, *, file: str, error: Callable[[Path, str], PolicyError]
) -> tuple[Gate | None, tuple[int | None, str | None], list[PolicyError]]:
    data: dict[Any, Any] = doc.data
    here: tuple[int | None, str | None] = (doc.line, None)
    problems: list[PolicyError] = [
        error((k,), f"unknown field{did_you_mean(k, _TOP_KEYS)}")
        for k in data
        if k not in _TOP_KEYS
    ]
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in data:
            problems.append(error((key,), f"required field missing (must be {want})"))
        elif data[key] != want:
            problems.append(error((key,), f"must be {want}, got {show(data[key])}"))
    metadata = data.get("metadata")
    name: str | None = None
    namespace = "default"
    if not isinstance(metadata, dict):
        message = (
            "required field missing"
            if metadata is None
            else f"must be a mapping, got {show(metadata)}"
        )
        problems.append(
            error(("metadata",) if metadata is not None else ("metadata", "name"), message)
        )
    else:
        raw_name = metadata.get("name")
        if raw_name is None:
            problems.append(error(("metadata", "name"), "required field missing"))
        elif not isinstance(raw_name, str) or not raw_name.strip():
            problems.append(error(("metadata", "name"), f"must be a name, got {show(raw_name)}"))
        else:
            name = raw_name
        raw_namespace = metadata.get("namespace", "default")
        if not isinstance(raw_namespace, str) or not raw_namespace.strip():
            problems.append(
                error(("metadata", "namespace"), f"must be a name, got {show(raw_namespace)}")
            )
        else:
            namespace = raw_namespace
    body = data.get("spec")
    spec: GateSpec | None = None
    if not isinstance(body, dict):
        message = (
            "required field missing" if body is None else f"must be a mapping, got {show(body)}"
        )
        problems.append(error(("spec",), message))
    else:
        spec, errors = _validate_spec(body, prefix=("spec",), doc=doc, file=file)
        problems += errors
    if spec is None or name is None or problems:
        return None, here, problems
    where = (doc.line_of(("metadata", "name")), "metadata.name")
    gate = Gate(name=name, namespace=namespace, spec=spec, source=f"{file}:{doc.line}")
    return gate, where, []


def _validate_spec(
    data: Mapping[Any, Any], *, prefix: Path, doc: Document | None, file: str
) -> tuple[GateSpec | None, list[PolicyError]]:
    """Validate one spec mapping; problems carry ``prefix``-rooted paths and lines."""
    uses_hours = "promotion_window_hours" in data and "promotion_window" not in data

    def locate(loc: Path, *, exact: bool) -> tuple[str, int | None]:
        loc = tuple(p for p in loc if p != "[key]")
        if uses_hours and loc[:1] == ("promotion_window",):
            loc = ("promotion_window_hours", *loc[1:])
        full = (*prefix, *loc)
        if doc is None:
            return _dotted(full), None
        shown = full if exact else doc.longest_present(full)
        if len(shown) < len(prefix):
            shown = prefix
        return _dotted(shown), doc.line_of(full)

    try:
        spec = GateSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            loc: Path = tuple(item.get("loc", ()))
            kind = item.get("type")
            if not loc and "promotion_window_hours" in data and "promotion_window" in data:
                loc = ("promotion_window_hours",)
            message = human_message(item, model=GateSpec, aliases=_ALIASES)
            if kind == "missing" and loc == ("promotion_window",):
                message = "required field missing (promotion_window, or promotion_window_hours)"
            path, line = locate(loc, exact=kind in ("missing", "extra_forbidden"))
            problems.append(PolicyError(message, file=file, line=line, path=path))
        problems.sort(key=lambda p: p.line or 0)
        return None, problems
    problems = []
    for loc, message in spec_problems(spec):
        path, line = locate(loc, exact=False)
        problems.append(PolicyError(message, file=file, line=line, path=path))
    return spec, problems
