"""shim.record behaves as the dataclasses it replaced, case by case: each record beside its dataclass twin."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from shim.record import FrozenInstanceError, factory, field_names, record, replace


@record(frozen=True)
class Point:
    x: int
    label: str = "origin"


@dataclasses.dataclass(frozen=True)
class PointTwin:
    x: int
    label: str = "origin"


@record
class Bag:
    name: str
    items: list[str] = factory(list)


@dataclasses.dataclass
class BagTwin:
    name: str
    items: list[str] = dataclasses.field(default_factory=list)


@record(frozen=True)
class Point3(Point):
    z: int = 0


def as_twin(text: str) -> str:
    return text.replace("PointTwin", "Point").replace("BagTwin", "Bag")


@pytest.mark.parametrize("make", [
    lambda cls: cls(1),
    lambda cls: cls(1, "a"),
    lambda cls: cls(x=1, label="a"),
    lambda cls: cls(1, label="a\n'quoted'"),
])
def test_a_frozen_record_inits_compares_hashes_and_prints_as_its_dataclass_twin(make):
    ours, twin = make(Point), make(PointTwin)
    assert repr(ours) == as_twin(repr(twin))
    assert ours == make(Point) and hash(ours) == hash(make(Point))
    assert ours != replace(ours, x=2) and ours != (1, "origin") and ours != twin


def test_a_mutable_record_gets_a_fresh_default_each_time_and_is_unhashable_like_a_dataclass():
    a, b = Bag("a"), Bag("a")
    a.items.append("x")
    assert b.items == [] and a != b and repr(a) == as_twin(repr(BagTwin("a", ["x"])))
    assert "items" not in Bag.__dict__ and "items" not in BagTwin.__dict__
    assert Bag.__hash__ is None and BagTwin.__hash__ is None


@pytest.mark.parametrize("call", [
    lambda cls: cls(),
    lambda cls: cls(1, "a", 3),
    lambda cls: cls(1, x=2),
    lambda cls: cls(1, nothing=2),
])
def test_a_wrong_call_is_a_type_error_as_for_a_dataclass(call):
    with pytest.raises(TypeError):
        call(PointTwin)
    with pytest.raises(TypeError):
        call(Point)


def test_a_frozen_record_refuses_assignment_and_deletion_with_an_attribute_error():
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.label
    assert p == Point(1)


def test_fields_come_in_order_base_first_and_replace_knows_only_them():
    assert field_names(Point3) == ("x", "label", "z") and Point3(1, "a", 2) == Point3(x=1, label="a", z=2)
    assert replace(Point3(1), z=5) == Point3(1, "origin", 5)
    with pytest.raises(TypeError):
        replace(Point(1), y=2)


def test_a_field_without_default_after_one_with_is_refused_at_definition():
    with pytest.raises(TypeError):
        @record
        class Bad:
            a: int = 0
            b: int


def test_a_build_script_run_and_compile_import_no_dataclasses():
    """What the launcher's run (shim.build.run and the host it instantiates) and a build script's wasm compile
    (shim.build.script) import, with a policy or without: dataclasses would pull inspect, ast, dis and
    tokenize into both."""
    code = ("import sys; import shim.build.run, shim.build.script, shim.host.files, shim.host.net, shim.host.probe, "
            "shim.sandbox.audit, shim.toolchain.first_use, shim.policy.load, shim.policy.curated; "
            "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
