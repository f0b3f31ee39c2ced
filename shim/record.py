"""Value classes without importing `dataclasses`: `@record` and `@record(frozen=True)`.

`dataclasses` imports `inspect` (and with it ast, dis, tokenize, linecache, copy): ~12 ms of CPU at the
start of every sandboxed build-script run and of every build-script compile, paid for class definitions
alone. A record behaves as a dataclass does where this code relies on it:
  - `__init__` takes the fields positionally or by keyword, in annotation order (a base record's first);
    defaults come from the class body, and `factory(list)` gives each instance a fresh mutable default;
  - instances of the same class are equal when their fields are; the repr is dataclasses' `Name(a=1, b=2)`;
  - a frozen record refuses assignment (`FrozenInstanceError`, an AttributeError) and hashes by its
    fields; a mutable one is unhashable, as a dataclass with eq is;
  - `replace(obj, **changes)` and `field_names(cls)`.
No ordering, no __post_init__, no ClassVar or InitVar fields: nothing here uses them.
"""

from __future__ import annotations

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record."""


class factory:  # noqa: N801 - reads as dataclasses' field(default_factory=...)
    """A field's default made fresh for each instance: `items: list[str] = factory(list)`."""

    __slots__ = ("make",)

    def __init__(self, make) -> None:
        self.make = make


def field_names(cls: type) -> tuple[str, ...]:
    return cls.__record_fields__  # type: ignore[attr-defined, no-any-return]


def replace(obj, **changes):
    """A copy of the record `obj` with `changes` (field names only, as dataclasses.replace)."""
    names = field_names(type(obj))
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{name: changes[name] if name in changes else getattr(obj, name) for name in names})


def record(cls=None, /, *, frozen: bool = False):
    """Make `cls` a record (see the module docstring); used as `@record` or `@record(frozen=True)`."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def _make(cls: type, frozen: bool) -> type:
    inherited: tuple[str, ...] = ()
    defaults: dict[str, object] = {}
    for base in reversed(cls.__mro__[1:]):
        if "__record_fields__" in base.__dict__:
            inherited = base.__record_fields__
            defaults.update(base.__record_defaults__)
    own = tuple(n for n in cls.__dict__.get("__annotations__", {}) if n not in inherited)
    names = inherited + own
    for name in own:
        value = cls.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            defaults[name] = value
            if isinstance(value, factory):
                delattr(cls, name)  # as dataclasses: no class attribute for a default_factory field
    for before, name in zip(names, names[1:]):
        if before in defaults and name not in defaults:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    title = cls.__name__
    positions = {name: k for k, name in enumerate(names)}

    def __init__(self, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{title}.__init__() takes {len(names) + 1} positional arguments but "
                            f"{len(args) + 1} were given")
        values = list(args) + [_MISSING] * (len(names) - len(args))
        for key, value in kwargs.items():
            k = positions.get(key)
            if k is None:
                raise TypeError(f"{title}.__init__() got an unexpected keyword argument {key!r}")
            if k < len(args):
                raise TypeError(f"{title}.__init__() got multiple values for argument {key!r}")
            values[k] = value
        for k, name in enumerate(names):
            value = values[k]
            if value is _MISSING:
                default = defaults.get(name, _MISSING)
                if default is _MISSING:
                    raise TypeError(f"{title}.__init__() missing required argument: {name!r}")
                value = default.make() if isinstance(default, factory) else default
            object.__setattr__(self, name, value)

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return _values(self) == _values(other)
        return NotImplemented

    def __repr__(self):
        return f"{type(self).__qualname__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    methods = {"__init__": __init__, "__eq__": __eq__, "__repr__": __repr__}
    if frozen:
        methods.update(__setattr__=__setattr__, __delattr__=__delattr__, __hash__=lambda self: hash(_values(self)))
    else:
        methods["__hash__"] = None
    for attr, method in methods.items():
        if attr not in cls.__dict__:
            if method is not None:
                method.__qualname__ = f"{cls.__qualname__}.{attr}"
            setattr(cls, attr, method)
    cls.__record_fields__ = names  # type: ignore[attr-defined]
    cls.__record_defaults__ = defaults  # type: ignore[attr-defined]
    cls.__match_args__ = names  # type: ignore[attr-defined]
    return cls
