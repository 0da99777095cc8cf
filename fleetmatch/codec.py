"""Dataclass <-> wire-dict conversion, strict on the way in.

Wire dicts use Kubernetes conventions (camelCase keys, RFC 3339 timestamps) and are what both JSON
(public APIs) and msgpack (Redis) carry. Decoding is strict because wire dicts often come from
users: an unknown key, a wrong type or a missing required field raises ``ValidationError`` naming
the field by its dotted path, so a typo in a fleet file is reported, not ignored.

Field types understood: str, int, float, bool, StrEnum, nested dataclasses, ``X | None``,
``tuple[X, ...]``, ``Mapping[str, X]``, ``int | str`` (Kubernetes IntOrString), ``float | str``
(a player attribute: a number or a word) and
``Timestamp`` (a float of epoch seconds carried as RFC 3339).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from fleetmatch.errors import ValidationError

T = TypeVar("T")


class _Rfc3339:
    """Marker: this float (epoch seconds) travels as an RFC 3339 string."""


Timestamp = Annotated[float, _Rfc3339]
"""Epoch seconds in memory; RFC 3339 (``2026-11-26T19:58:00Z``) on the wire."""


@dataclasses.dataclass(frozen=True)
class OneOf:
    """``Annotated[SomeEnum, OneOf(...)]``: a field that takes only these members of its enum, and
    whose error names only them (not every member, then refusing most of those)."""

    members: tuple[enum.Enum, ...]


def _one_of(enum_cls: Any, only: OneOf) -> tuple[Callable[[Any], Any], Callable[[Any, str], Any]]:
    allowed = " or ".join(str(m.value) for m in only.members)

    def dec_one(v: Any, p: str) -> Any:
        member = enum_cls._value2member_map_.get(v) if isinstance(v, str) else None
        if member is None or member not in only.members:
            raise ValidationError(p, f"must be {allowed}; got {v!r}")
        return member

    return (lambda v: v.value), dec_one


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_seconds: dict[int, str] = {}
"""Whole seconds -> their RFC 3339 text without the fraction, for the last few seconds stamped."""
MAX_STAMPED_SECONDS = 64


def format_timestamp(epoch: float) -> str:
    """RFC 3339 with milliseconds. The text of each whole second is kept: a ticket stamps its
    creation and its expiry (two seconds, alternately: one last result missed both), and bursts
    stamp many objects per second."""
    seconds, ms = divmod(int(epoch * 1000), 1000)
    head = _seconds.get(seconds)
    if head is None:
        if len(_seconds) >= MAX_STAMPED_SECONDS:
            _seconds.clear()
        head = _seconds[seconds] = datetime.fromtimestamp(seconds, UTC).isoformat().removesuffix("+00:00")
    return f"{head}.{ms:03d}Z"


def parse_timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


Encoder = Callable[[Any], Any]
Decoder = Callable[[Any, str], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    wire: str
    encode: Encoder
    decode: Decoder
    required: bool


def _identity(value: Any) -> Any:
    return value


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Every integer on the wire is an int64, as in Kubernetes and Agones (and msgpack carries no more)."""


def _finite(value: int | float, path: str) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(path, "must be a finite number")
    return number


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _fail(path: str, expected: str, value: Any) -> typing.NoReturn:
    shown = "null" if value is None else f"{_kind(value)} {value!r}"
    raise ValidationError(path, f"expected {expected}, got {shown}"[:200])


def _converters(tp: Any) -> tuple[Encoder, Decoder]:  # noqa: C901 - one branch per supported type
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        only = next((a for a in args[1:] if isinstance(a, OneOf)), None)
        if only is not None:
            return _one_of(args[0], only)
        if _Rfc3339 in args[1:]:

            def dec_ts(v: Any, p: str) -> float:
                if isinstance(v, int | float) and not isinstance(v, bool):
                    return _finite(v, p)
                if isinstance(v, str):
                    try:
                        return parse_timestamp(v)
                    except ValueError:
                        pass
                _fail(p, "an RFC 3339 timestamp", v)

            return format_timestamp, dec_ts
        return _converters(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if set(members) == {int, str}:

            def dec_int_or_str(v: Any, p: str) -> int | str:
                if isinstance(v, bool) or not isinstance(v, int | str):
                    _fail(p, "an integer or a string", v)
                if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
                    raise ValidationError(p, f"must be within int64 ({INT64_MIN}..{INT64_MAX})")
                return v

            return _identity, dec_int_or_str
        if set(members) == {float, str}:

            def dec_number_or_str(v: Any, p: str) -> float | str:
                if isinstance(v, str):
                    return v
                if isinstance(v, bool) or not isinstance(v, int | float):
                    _fail(p, "a number or a string", v)
                return _finite(v, p)

            return _identity, dec_number_or_str
        if len(members) != 1:
            raise TypeError(f"unsupported union {tp}")
        inner_enc, inner_dec = _converters(members[0])

        def optional_dec(v: Any, p: str) -> Any:
            return None if v is None else inner_dec(v, p)

        if inner_enc is _identity:  # the encoders below are on every store write: no needless calls
            return _identity, optional_dec
        return (lambda v: None if v is None else inner_enc(v)), optional_dec
    if origin is tuple:
        item_enc, item_dec = _converters(args[0])

        def dec_tuple(v: Any, p: str) -> tuple[Any, ...]:
            if not isinstance(v, list | tuple):
                _fail(p, "a list", v)
            return tuple(item_dec(x, f"{p}[{i}]") for i, x in enumerate(v))

        return (list if item_enc is _identity else lambda v: [item_enc(x) for x in v]), dec_tuple
    if origin in (Mapping, dict, typing.Mapping):
        val_enc, val_dec = _converters(args[1])

        def dec_map(v: Any, p: str) -> dict[str, Any]:
            if not isinstance(v, Mapping):
                _fail(p, "a mapping", v)
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    _fail(p, "string keys", k)
                out[k] = val_dec(x, f"{p}.{k}")
            return out

        return (dict if val_enc is _identity else lambda v: {k: val_enc(x) for k, x in v.items()}), dec_map
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp
        return to_wire, (lambda v, p: from_wire(cls, v, p))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        enum_cls = tp
        allowed = ", ".join(str(m.value) for m in enum_cls)

        def dec_enum(v: Any, p: str) -> Any:
            try:
                return enum_cls(v)
            except ValueError:
                raise ValidationError(p, f"must be one of {allowed}; got {v!r}") from None

        return (lambda v: v.value), dec_enum
    if tp is bool:

        def dec_bool(v: Any, p: str) -> bool:
            if not isinstance(v, bool):
                _fail(p, "true or false", v)
            return v

        return _identity, dec_bool
    if tp is int:

        def dec_int(v: Any, p: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                _fail(p, "an integer", v)
            if not INT64_MIN <= v <= INT64_MAX:
                raise ValidationError(p, f"must be within int64 ({INT64_MIN}..{INT64_MAX})")
            return v

        return _identity, dec_int
    if tp is float:

        def dec_float(v: Any, p: str) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                _fail(p, "a number", v)
            return _finite(v, p)

        return _identity, dec_float
    if tp is str:

        def dec_str(v: Any, p: str) -> str:
            if not isinstance(v, str):
                _fail(p, "a string", v)
            return v

        return _identity, dec_str
    if tp is Any:
        return _identity, lambda v, p: v
    raise TypeError(f"unsupported field type {tp!r}")


@functools.cache
def _fields(cls: Any) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        enc, dec = _converters(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(_Field(f.name, f.metadata.get("wire", camel(f.name)), enc, dec, required))
    return tuple(out)


@functools.cache
def _encoder(cls: Any) -> Callable[[Any], dict[str, Any]]:
    """A function written for ``cls`` that builds its wire dict in one expression: encoding is on
    every store write, and a generic loop over field descriptors costs several times more."""
    fields = _fields(cls)
    env: dict[str, Any] = {}
    items = []
    for i, f in enumerate(fields):
        if f.encode is _identity:
            items.append(f"{f.wire!r}: obj.{f.name}")
        else:
            env[f"enc{i}"] = f.encode
            items.append(f"{f.wire!r}: enc{i}(obj.{f.name})")
    source = "def encode(obj):\n    return {" + ", ".join(items) + "}\n"
    exec(source, env)  # generated from the dataclass's own field names
    encode: Callable[[Any], dict[str, Any]] = env["encode"]
    return encode


def to_wire(obj: Any) -> dict[str, Any]:
    """Encode a dataclass to a wire dict (every field, camelCase keys)."""
    return _encoder(cast(Any, type(obj)))(obj)


@functools.cache
def _wire_names(cls: Any) -> frozenset[str]:
    return frozenset(f.wire for f in _fields(cls))


def from_wire(cls: type[T], data: Any, path: str = "") -> T:
    """Decode a wire dict into ``cls``; raise ``ValidationError`` naming the first bad field."""
    if not isinstance(data, Mapping):
        _fail(path or "<document>", "a mapping", data)
    fields = _fields(cast(Any, cls))
    by_wire = _wire_names(cast(Any, cls))
    if not by_wire.issuperset(data):
        key = next(k for k in data if k not in by_wire)
        known = ", ".join(sorted(by_wire))
        where = f"{path}.{key}" if path else str(key)
        raise ValidationError(where, f"unknown field (known fields here: {known})")
    kwargs: dict[str, Any] = {}
    for f in fields:
        where = f"{path}.{f.wire}" if path else f.wire
        if f.wire in data:
            kwargs[f.name] = f.decode(data[f.wire], where)
        elif f.required:
            raise ValidationError(where, "required field is missing")
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise exc.under(path) from None


# -- trusted data ---------------------------------------------------------------------------
# Data fleetmatch wrote itself (records in its own store) was validated on the way in. Reading it
# back on a hot path (every watch event, every allocation) need not pay for validation again:
# these build the same objects without running ``__init__``/``__post_init__``.

Loader = Callable[[Any], Any]


def _trusted_loader(tp: Any) -> Loader:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        if _Rfc3339 in args[1:]:
            return lambda v: v if isinstance(v, float | int) else parse_timestamp(v)
        return _trusted_loader(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if set(members) in ({int, str}, {float, str}):
            return _identity
        inner = _trusted_loader(members[0])
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        item = _trusted_loader(args[0])
        if item is _identity:
            return tuple
        return lambda v: tuple(item(x) for x in v)
    if origin in (Mapping, dict, typing.Mapping):
        value = _trusted_loader(args[1])
        if value is _identity:
            return dict
        return lambda v: {k: value(x) for k, x in v.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _trusted_load(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp._value2member_map_.__getitem__  # a dict lookup: calling the enum class is slow
    if tp is float:
        return float
    return _identity


@functools.cache
def _trusted_fields(cls: Any) -> tuple[tuple[str, str, Loader, Callable[[], Any]], ...]:
    """(name, wire name, loader, default maker) per field."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            make: Callable[[], Any] = f.default_factory
        else:
            make = functools.partial(_identity, f.default)  # MISSING only for required fields, always present
        out.append((f.name, f.metadata.get("wire", camel(f.name)), _trusted_loader(hints[f.name]), make))
    return tuple(out)


_set = object.__setattr__


def load_trusted(cls: type[T], data: Mapping[str, Any]) -> T:
    """``from_wire`` for data this system wrote itself: no validation, several times faster."""
    obj: T = _trusted_load(cast(Any, cls))(data)
    return obj


@functools.cache
def _trusted_load(cls: Any) -> Callable[[Mapping[str, Any]], Any]:
    """A function written for ``cls`` that sets each field from its wire name (through the slot
    itself where the class has slots), calling a loader only where the value needs one: every
    watch event and every ticket read decodes a record, and a generic loop over the fields cost
    about twice as much per object."""
    env: dict[str, Any] = {"new_": object.__new__, "cls": cls}
    lines = ["def load(data):", "    new = new_(cls)"]
    slots = set(getattr(cls, "__slots__", ()))
    described = zip(dataclasses.fields(cls), _trusted_fields(cls), strict=True)  # both in field order
    for i, (field, (name, wire, load, make)) in enumerate(described):
        env[f"set{i}"] = cls.__dict__[name].__set__ if name in slots else functools.partial(_set_named, name)
        value = f"data[{wire!r}]" if load is _identity else f"load{i}(data[{wire!r}])"
        env[f"load{i}"] = load
        if field.default_factory is dataclasses.MISSING:
            env[f"default{i}"] = field.default  # MISSING only for required fields, always present
            missing = f"default{i}"
        else:
            env[f"make{i}"] = make
            missing = f"make{i}()"
        lines.append(f"    set{i}(new, {value} if {wire!r} in data else {missing})")
    lines.append("    return new")
    exec("\n".join(lines) + "\n", env)  # generated from the dataclass's own field names
    loader: Callable[[Mapping[str, Any]], Any] = env["load"]
    return loader


def _set_named(name: str, obj: Any, value: Any) -> None:
    _set(obj, name, value)


def evolve(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` without re-validation, for objects already known to be valid and
    changes the caller has validated (hot paths: claims, store reads). A name that is not a field
    of a slotted dataclass raises ``AttributeError``."""
    new: T = _copier(cast(Any, type(obj)))(obj, changes)
    return new


@functools.cache
def _copier(cls: Any) -> Callable[[Any, dict[str, Any]], Any]:
    """A function written for ``cls`` that copies every field then applies the changes: a claim
    evolves several objects, and a generic loop over the fields cost ~4x more per object."""
    env: dict[str, Any] = {"new_": object.__new__, "set_": _set, "cls": cls}
    lines = ["def copy(obj, changes):", "    new = new_(cls)"]
    lines += [f"    set_(new, {f.name!r}, obj.{f.name})" for f in dataclasses.fields(cls)]
    lines += ["    for name, value in changes.items():", "        set_(new, name, value)", "    return new"]
    exec("\n".join(lines) + "\n", env)  # generated from the dataclass's own field names
    copy: Callable[[Any, dict[str, Any]], Any] = env["copy"]
    return copy
