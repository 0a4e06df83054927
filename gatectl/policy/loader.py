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
import stat
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
MAX_BYTES = 1024 * 1024
"""A policy file larger than this (1 MiB) is refused before it is parsed."""
MAX_PROBLEMS = 20
"""Problems reported per file; a file with more gets one more line saying so."""
_MAX_MESSAGE = 300
_MAX_PATH_PART = 40
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


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

    Never raises for bad input: unreadable files, FIFOs and devices, files
    over ``MAX_BYTES``, YAML syntax errors, unsupported tags and invalid
    fields all become ``problems``, at most ``MAX_PROBLEMS`` (+1) per file,
    each quoting at most a short excerpt of a value. A bad file does not stop
    the others, nor a bad document the good ones in its file. Gate names must
    be unique per load (``namespace/name``); a second gate with a taken name
    is a problem.
    """
    result = LoadResult()
    seen: dict[str, str] = {}
    for raw in paths:
        files, problems = _expand(os.fspath(raw))
        result.problems.extend(problems)
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


def _expand(path: str) -> tuple[list[str], list[PolicyError]]:
    """The policy files ``path`` names (a directory: its YAML files, sorted, not recursive).

    Only regular files are read: a ``*.yaml`` entry that is a FIFO, a device,
    a socket or a directory is a problem (opening a FIFO would wait forever).
    """
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            return [], [PolicyError(f"cannot read directory: {exc.strerror}", file=path)]
        files: list[str] = []
        problems: list[PolicyError] = []
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            file = os.path.join(path, name)
            try:
                mode = os.stat(file).st_mode
            except OSError:
                continue  # a dangling link or a file removed meanwhile: not a policy here
            if stat.S_ISREG(mode):
                files.append(file)
            else:
                problems.append(_not_regular(file, mode))
        if not files and not problems:
            problems.append(PolicyError("no policies here (no *.yaml or *.yml files)", file=path))
        return files, problems
    return [path], []


def _not_regular(file: str, mode: int) -> PolicyError:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return PolicyError(f"not a regular file ({kind}): a policy must be a file", file=file)


def _read(file: str) -> tuple[str | None, PolicyError | None]:
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of
    # waiting forever; fstat then refuses anything that is not a regular file.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        mode = os.stat(file).st_mode
        if not stat.S_ISREG(mode):
            return None, _not_regular(file, mode)
        fd = os.open(file, flags)
    except FileNotFoundError:
        return None, PolicyError("file not found", file=file)
    except OSError as exc:
        return None, PolicyError(f"cannot read file: {exc.strerror or exc}", file=file)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return None, _not_regular(file, mode)
        with open(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, PolicyError(f"cannot read file: {exc.strerror or exc}", file=file)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        return None, PolicyError(
            f"file too large (over {MAX_BYTES // (1024 * 1024)} MiB): a policy is a few kB",
            file=file,
        )
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
            if len(problems) > MAX_PROBLEMS:
                break  # the rest of a file this broken is not worth reading
    except YamlProblem as exc:
        problems.append(
            PolicyError(exc.message, file=file, line=exc.line, path=_dotted(exc.path) or None)
        )
    if documents == 0 and not problems:
        problems.append(PolicyError("empty file: no policy in it", file=file))
    return gates, _bounded(problems, file=file)


def _bounded(problems: list[PolicyError], *, file: str) -> list[PolicyError]:
    """At most ``MAX_PROBLEMS`` problems, each message and path of a bounded length."""
    kept = [_clip(p) for p in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        kept.append(
            PolicyError(
                f"too many problems: stopped after the first {MAX_PROBLEMS} in this file",
                file=file,
            )
        )
    return kept


def _clip(problem: PolicyError) -> PolicyError:
    message, path = problem.message, problem.path
    if len(message) <= _MAX_MESSAGE and (path is None or len(path) <= _MAX_MESSAGE):
        return problem
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    if path is not None and len(path) > _MAX_MESSAGE:
        path = path[: _MAX_MESSAGE - 3] + "..."
    return PolicyError(
        message, file=problem.file, line=problem.line, column=problem.column, path=path
    )


def _dotted(path: Path) -> str:
    """``spec.success_criteria.exception_rate``; odd keys escaped and cut short."""
    parts = []
    for part in path:
        if part == "[key]":
            continue
        text = str(part)
        if not text.isprintable() or "." in text:
            text = repr(text)
        if len(text) > _MAX_PATH_PART:
            text = text[: _MAX_PATH_PART - 3] + "..."
        parts.append(text)
    return ".".join(parts)


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
            error((k,), f"unknown field{did_you_mean(k, [BARE_KEY]) or _ONLY_BARE}")
            for k in extra[: MAX_PROBLEMS + 1]
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
        for k in [k for k in data if k not in _TOP_KEYS][: MAX_PROBLEMS + 1]
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
        located = []
        for item in exc.errors(include_url=False, include_context=True):
            loc: Path = tuple(item.get("loc", ()))
            kind = item.get("type")
            if not loc and "promotion_window_hours" in data and "promotion_window" in data:
                loc = ("promotion_window_hours",)
            path, line = locate(loc, exact=kind in ("missing", "extra_forbidden"))
            located.append((line or 0, path, loc, item))
        located.sort(key=lambda entry: entry[0])
        problems = []
        # Only the first ones become sentences: a file shows at most MAX_PROBLEMS.
        for line, path, loc, item in located[: MAX_PROBLEMS + 1]:
            message = human_message(item, model=GateSpec, aliases=_ALIASES)
            if item.get("type") == "missing" and loc == ("promotion_window",):
                message = "required field missing (promotion_window, or promotion_window_hours)"
            problems.append(PolicyError(message, file=file, line=line or None, path=path))
        return None, problems
    problems = []
    for loc, message in spec_problems(spec):
        path, line = locate(loc, exact=False)
        problems.append(PolicyError(message, file=file, line=line, path=path))
    return spec, problems
