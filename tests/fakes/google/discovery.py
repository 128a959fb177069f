"""Routing and request validation driven only by a Google API discovery document.

`Discovery` finds the method for an HTTP verb and a path (relative to the API's
service path) and `Validator` checks query parameters and JSON bodies against the
method's `parameters` and the document's `schemas`, the way Google's front end does:
unknown names and wrong types are rejected with HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .errors import ApiError, invalid, required


def documents_dir() -> Path:
    import googleapiclient

    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def load_document(name: str, version: str) -> dict[str, Any]:
    return json.loads((documents_dir() / f"{name}.{version}.json").read_text(encoding="utf-8"))


RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INT = re.compile(r"^[+-]?\d+$")

INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
PROTO_TYPES = {
    ("string", None): "TYPE_STRING",
    ("string", "byte"): "TYPE_BYTES",
    ("string", "int64"): "TYPE_INT64",
    ("string", "uint64"): "TYPE_UINT64",
    ("integer", "int32"): "TYPE_INT32",
    ("integer", "uint32"): "TYPE_UINT32",
    ("number", "double"): "TYPE_DOUBLE",
    ("number", "float"): "TYPE_FLOAT",
    ("boolean", None): "TYPE_BOOL",
}


def parse_rfc3339(text: str, *, offset_required: bool) -> datetime | None:
    """The datetime, aware when the text has an offset; None when it is not RFC 3339."""
    match = RFC3339.match(text)
    if not match:
        return None
    if offset_required and not match.group(8):
        return None
    normalized = text.upper().replace("Z", "+00:00")
    fraction = match.group(7)
    if fraction and len(fraction) > 7:  # fromisoformat takes at most microseconds
        normalized = normalized.replace(fraction, fraction[:7])
    try:
        return datetime.fromisoformat(normalized)
    except ValueError:
        return None


def decode_bytes(text: str) -> bytes | None:
    """Protobuf JSON `bytes`: standard or URL-safe base64, padding optional."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass
class MethodSpec:
    id: str
    http_method: str
    template: str
    regex: re.Pattern[str]
    path_params: list[str]
    parameters: dict[str, dict[str, Any]]  # method parameters plus the API's global ones
    request: str | None
    response: str | None
    scopes: list[str]
    literal_weight: int
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # When the flat path names other parameters than the method's ("v2/spaces/{spacesId}"
    # routes "v2/{+name}", as Meet's methods do): how to read the method's own values.
    values: tuple[re.Pattern[str], list[str]] | None = None


def _compile(template: str) -> tuple[re.Pattern[str], list[str], int]:
    regex, names, pos, literal = "^", [], 0, 0
    for index, match in enumerate(re.finditer(r"\{(\+?)([^}]+)\}", template)):
        chunk = template[pos : match.start()]
        regex += re.escape(chunk)
        literal += len(chunk)
        regex += f"(?P<p{index}>{'.+' if match.group(1) else '[^/]+'})"
        names.append(match.group(2))
        pos = match.end()
    regex += re.escape(template[pos:]) + "$"
    literal += len(template) - pos
    return re.compile(regex), names, literal


class Discovery:
    """One API's methods and schemas, read from its discovery document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.name: str = document["name"]
        self.version: str = document["version"]
        self.title: str = document.get("title", self.name)
        self.service_path: str = document.get("servicePath", "")
        self.batch_path: str = document.get("batchPath", "batch")
        self.schemas: dict[str, dict[str, Any]] = document.get("schemas", {})
        self.global_parameters: dict[str, dict[str, Any]] = document.get("parameters", {})
        self.methods: dict[str, MethodSpec] = {}
        self._walk(document.get("resources", {}))
        self._ordered = sorted(self.methods.values(), key=lambda m: -m.literal_weight)

    @classmethod
    def load(cls, name: str, version: str) -> Discovery:
        return cls(load_document(name, version))

    def _walk(self, resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                template = method.get("flatPath") or method["path"]
                regex, names, literal = _compile(template)
                values = None
                if method.get("flatPath") and method["flatPath"] != method["path"]:
                    own, own_names, _ = _compile(method["path"])
                    values = (own, own_names)
                parameters = dict(self.global_parameters)
                parameters.update(method.get("parameters", {}))
                self.methods[method["id"]] = MethodSpec(
                    id=method["id"],
                    http_method=method["httpMethod"].upper(),
                    template=template,
                    regex=regex,
                    path_params=names,
                    parameters=parameters,
                    request=(method.get("request") or {}).get("$ref"),
                    response=(method.get("response") or {}).get("$ref"),
                    scopes=list(method.get("scopes", [])),
                    literal_weight=literal,
                    raw=method,
                    values=values,
                )
            self._walk(resource.get("resources", {}))

    def match(self, http_method: str, relative_path: str) -> tuple[MethodSpec, dict[str, str]]:
        """The method for a verb and a still percent-encoded path below the service path."""
        for spec in self._ordered:
            if spec.http_method != http_method.upper():
                continue
            found = spec.regex.match(relative_path)
            if found and spec.values is not None:
                own, names = spec.values
                matched = own.match(relative_path)
                if matched:
                    return spec, {name: urllib.parse.unquote(matched.group(f"p{i}")) for i, name in enumerate(names)}
            if found:
                values = {name: urllib.parse.unquote(found.group(f"p{i}")) for i, name in enumerate(spec.path_params)}
                return spec, values
        raise ApiError(404, "notFound", f"The requested URL /{self.service_path}{relative_path} was not found.")


class Validator:
    """Checks query parameters and request bodies of one API against its discovery document."""

    def __init__(self, discovery: Discovery) -> None:
        self.discovery = discovery
        self.schemas = discovery.schemas

    # ------------------------------------------------------------------ query parameters

    def query(self, spec: MethodSpec, pairs: Iterable[tuple[str, str]], path_values: dict[str, str]) -> dict[str, Any]:
        """Typed parameter values (repeated ones as lists); path parameters included."""
        values: dict[str, Any] = {}
        for name, value in path_values.items():
            values[name] = self._convert(spec, name, spec.parameters.get(name, {"type": "string"}), value)
        for name, raw in pairs:
            definition = spec.parameters.get(name)
            if definition is None or definition.get("location") == "path":
                raise ApiError(
                    400,
                    "invalid",
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                    f"Field '{name}' could not be found in request message.",
                    location=name,
                    location_type="parameter",
                )
            converted = self._convert(spec, name, definition, raw)
            if definition.get("repeated"):
                values.setdefault(name, []).append(converted)
            elif name in values:
                raise invalid(f"Parameter '{name}' may only be given once.", location=name)
            else:
                values[name] = converted
        for name, definition in spec.parameters.items():
            if definition.get("required") and name not in values:
                raise required(f"Required parameter: {name}", location=name)
        return values

    def _convert(self, spec: MethodSpec, name: str, definition: dict[str, Any], raw: str) -> Any:
        kind, fmt = definition.get("type", "string"), definition.get("format")

        def bad(expected: str) -> ApiError:
            return invalid(f"Invalid value '{raw}' for parameter '{name}': {expected}.", location=name)

        value: Any
        if kind == "integer" or fmt in ("int64", "uint64"):
            if not INT.match(raw):
                raise bad("expected an integer")
            value = int(raw)
            low, high = INT_RANGES.get(fmt or "int32", INT_RANGES["int64"])
            if not low <= value <= high:
                raise bad(f"out of range for {fmt}")
            if "minimum" in definition and value < int(definition["minimum"]):
                raise bad(f"must be at least {definition['minimum']}")
            if "maximum" in definition and value > int(definition["maximum"]):
                raise bad(f"must be at most {definition['maximum']}")
        elif kind == "number":
            try:
                value = float(raw)
            except ValueError:
                raise bad("expected a number") from None
        elif kind == "boolean":
            if raw.lower() not in ("true", "false"):
                raise bad("expected true or false")
            value = raw.lower() == "true"
        else:
            value = raw
            if fmt in ("date-time", "google-datetime") and parse_rfc3339(raw, offset_required=True) is None:
                raise bad("expected an RFC 3339 timestamp with a time zone offset")
            if fmt == "date" and not DATE.match(raw):
                raise bad("expected a date YYYY-MM-DD")
        if "enum" in definition and raw not in definition["enum"]:
            raise bad("expected one of " + ", ".join(definition["enum"]))
        if "pattern" in definition and not re.match(definition["pattern"], raw):
            raise bad(f"does not match {definition['pattern']}")
        return value

    # ------------------------------------------------------------------ request bodies

    def body(self, spec: MethodSpec, body: Any) -> None:
        """Raise ApiError 400 for a body that Google's JSON parser would refuse."""
        if spec.request is None:
            return
        errors: list[ApiError] = []
        self._check(body, {"$ref": spec.request}, "", spec.id, errors)
        if errors:
            first = errors[0]
            raise ApiError(400, first.reason, first.message, errors=[e.item() for e in errors])

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        return schema

    def _check(self, value: Any, schema: dict[str, Any], path: str, method_id: str, errors: list[ApiError]) -> None:
        if value is None:  # JSON null means "not set" to Google's parser
            return
        target = self._resolve(schema)
        kind, fmt = target.get("type", "any"), target.get("format")
        where = f"resource.{path}" if path else "resource"

        def wrong() -> None:
            proto = PROTO_TYPES.get((kind, fmt)) or PROTO_TYPES.get((kind, None))
            if proto is None:
                proto = f"type.googleapis.com/{target.get('id', 'message')}" if kind == "object" else kind.upper()
            shown = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
            errors.append(ApiError(400, "invalid", f"Invalid value at '{where}' ({proto}), {shown}", location=where, location_type="body"))

        if kind == "any":
            return
        if kind == "object":
            if not isinstance(value, dict):
                if isinstance(value, list):
                    errors.append(
                        ApiError(
                            400,
                            "invalid",
                            f"Invalid JSON payload received. Proto field is not repeating, cannot start list at '{where}'.",
                            location=where,
                            location_type="body",
                        )
                    )
                else:
                    wrong()
                return
            properties = target.get("properties")
            additional = target.get("additionalProperties")
            if properties is None and additional is None:
                return  # a free-form object
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                if properties is not None and key in properties:
                    self._check(item, properties[key], child, method_id, errors)
                elif additional is not None:
                    self._check(item, additional, child, method_id, errors)
                else:
                    at = f" at '{where}'" if path else ""
                    errors.append(
                        ApiError(
                            400,
                            "invalid",
                            f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.',
                            location=f"{where}.{key}",
                            location_type="body",
                        )
                    )
            for key, prop in (properties or {}).items():
                if method_id in prop.get("annotations", {}).get("required", []) and value.get(key) is None:
                    child = f"{where}.{key}"
                    errors.append(ApiError(400, "required", f"Required field not specified: {child}", location=child, location_type="body"))
            return
        if kind == "array":
            if not isinstance(value, list):
                errors.append(
                    ApiError(
                        400,
                        "invalid",
                        f"Invalid value at '{where}': a list was expected, got {json.dumps(value)[:80]}",
                        location=where,
                        location_type="body",
                    )
                )
                return
            items = target.get("items", {"type": "any"})
            for index, item in enumerate(value):
                self._check(item, items, f"{path}[{index}]", method_id, errors)
            return
        if kind == "boolean":
            if not isinstance(value, bool):
                wrong()
            return
        if kind == "integer" or (kind == "string" and fmt in ("int64", "uint64")):
            number: int | None = None
            if isinstance(value, bool):
                number = None
            elif isinstance(value, int):
                number = value
            elif isinstance(value, float) and value.is_integer():
                number = int(value)
            elif isinstance(value, str) and INT.match(value):
                number = int(value)
            low, high = INT_RANGES.get(fmt or "int32", INT_RANGES["int64"])
            if number is None or not low <= number <= high:
                wrong()
            return
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                wrong()
            elif isinstance(value, str):
                try:
                    float(value)
                except ValueError:
                    wrong()
            return
        if kind == "string":
            if not isinstance(value, str):
                wrong()
                return
            if fmt == "byte" and decode_bytes(value) is None:
                wrong()
            elif fmt in ("date-time", "google-datetime") and parse_rfc3339(value, offset_required=False) is None:
                wrong()
            elif fmt == "date":
                try:
                    if not DATE.match(value):
                        raise ValueError
                    date.fromisoformat(value)
                except ValueError:
                    wrong()
            if "enum" in target and value not in target["enum"]:
                wrong()
            return

    # ------------------------------------------------------------------ partial responses

    def field_mask(self, spec: MethodSpec, expression: str) -> dict[str, Any] | None:
        """Parse a `fields` selector and check its names against the response schema."""
        if not expression:
            return None
        mask = _parse_fields(expression)
        if spec.response:
            self._check_mask(mask, {"$ref": spec.response}, "")
        return mask

    def _check_mask(self, mask: dict[str, Any], schema: dict[str, Any], path: str) -> None:
        target = self._resolve(schema)
        while target.get("type") == "array":
            target = self._resolve(target.get("items", {}))
        properties = target.get("properties")
        additional = target.get("additionalProperties")
        for name, sub in mask.items():
            if name == "*":
                continue
            if properties is not None and name in properties:
                child = properties[name]
            elif additional is not None:
                child = additional
            elif properties is None:
                continue
            else:
                full = f"{path}/{name}" if path else name
                raise ApiError(400, "invalidParameter", f"Invalid field selection {full}", location="fields", location_type="parameter")
            if sub:
                self._check_mask(sub, child, f"{path}/{name}" if path else name)


def _parse_fields(expression: str) -> dict[str, Any]:
    """`items(id,start/dateTime),nextPageToken` -> {"items": {"id": {}, "start": {"dateTime": {}}}, ...}."""
    position = 0

    def fail() -> ApiError:
        return ApiError(400, "invalidParameter", f"Invalid field selection {expression}", location="fields", location_type="parameter")

    def parse_list() -> dict[str, Any]:
        nonlocal position
        result: dict[str, Any] = {}
        while True:
            names = [parse_name()]
            while position < len(expression) and expression[position] == "/":
                position += 1
                names.append(parse_name())
            sub: dict[str, Any] = {}
            if position < len(expression) and expression[position] == "(":
                position += 1
                sub = parse_list()
                if position >= len(expression) or expression[position] != ")":
                    raise fail()
                position += 1
            node = result
            for name in names[:-1]:
                node = node.setdefault(name, {})
            last = names[-1]
            if last not in node:
                node[last] = sub
            elif node[last] and sub:
                node[last].update(sub)
            else:
                node[last] = {}  # an empty sub-mask selects the whole field
            if position < len(expression) and expression[position] == ",":
                position += 1
                continue
            return result

    def parse_name() -> str:
        nonlocal position
        match = re.compile(r"\s*([A-Za-z0-9_$.*@-]+)\s*").match(expression, position)
        if not match:
            raise fail()
        position = match.end()
        return match.group(1)

    mask = parse_list()
    if position != len(expression):
        raise fail()
    return mask


def apply_mask(value: Any, mask: dict[str, Any] | None) -> Any:
    """Keep only the selected fields (a sub-mask of {} keeps the whole value)."""
    if not mask:
        return value
    if isinstance(value, list):
        return [apply_mask(item, mask) for item in value]
    if not isinstance(value, dict):
        return value
    if "*" in mask:
        return {key: apply_mask(item, mask.get(key) or None) for key, item in value.items()}
    return {key: apply_mask(value[key], sub or None) for key, sub in mask.items() if key in value}
