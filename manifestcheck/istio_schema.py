"""Istio resources against Istio's schema, with unknown fields rejected and no type coercion.

The schema is cloudcoil-models-istio's pydantic models, generated from Istio's
CRDs. Validated by alias (camelCase, as in YAML), ``extra="forbid"`` and
``strict=True``: a misspelled field, a snake_case field or a quoted number is
an error, where the API server would prune, reject or coerce it.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable

import pydantic

from manifestcheck.kubernetes_schema import field_path
from manifestcheck.model import Finding, Manifest

CHECK = "istio-schema"
# Read by istioctl, not the API server: install.istio.io has no CRD since Istio 1.24.
NOT_RESOURCES = {"install.istio.io"}
_NAME = re.compile(r"^[a-z][a-z0-9]*$")


def module_name(api_version: str) -> str | None:
    """networking.istio.io/v1 -> cloudcoil.models.istio.networking.v1 (imported on demand: each is large)."""
    group, _, version = api_version.rpartition("/")
    area = group.removesuffix(".istio.io")
    # Only names of the form cloudcoil uses: a manifest never picks an arbitrary module.
    if not group.endswith(".istio.io") or not _NAME.match(area) or not _NAME.match(version):
        return None
    return f"cloudcoil.models.istio.{area}.{version}"


@functools.cache
def module_models(name: str) -> tuple[dict[str, type[pydantic.BaseModel]], frozenset[str]]:
    """The module's resources by kind, and the names of all its models (union branches are named by them)."""
    from cloudcoil.resources import Resource

    try:
        module = importlib.import_module(name)
    except ImportError:
        return {}, frozenset()
    resources, classes = {}, set()
    for class_name, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
            classes.add(class_name)
            if issubclass(value, Resource) and value is not Resource:
                kind = value.model_fields.get("kind")
                if kind is not None and kind.default:
                    resources[kind.default] = value
    return resources, frozenset(classes)


def check_istio_schema(manifests: Iterable[Manifest]) -> list[Finding]:
    findings = []
    for manifest in manifests:
        if not manifest.is_istio or manifest.group in NOT_RESOURCES:
            continue
        name = module_name(manifest.api_version)
        models, classes = module_models(name) if name else ({}, frozenset())
        model = models.get(manifest.kind)
        if model is None:
            findings.append(
                manifest.finding(
                    CHECK, "apiVersion", f"no Istio resource {manifest.api_version} {manifest.kind}"
                )
            )
            continue
        try:
            model.model_validate(
                dict(manifest.body), strict=True, extra="forbid", by_alias=True, by_name=False
            )
        except pydantic.ValidationError as error:
            for location, message in best_union_branches(error.errors(), classes):
                findings.append(manifest.finding(CHECK, field_path(location), message))
    return findings


def best_union_branches(errors: list[dict], classes: frozenset[str]) -> list[tuple[tuple, str]]:
    """Errors as (location, message), keeping for each union (a CRD oneOf) only its closest branch.

    pydantic tries every branch of a union and reports them all, naming each by
    its model class in the location; the user needs only the branch they meant.
    """
    branches: dict[tuple, dict[str, list[tuple[tuple, str]]]] = {}
    plain: list[tuple[tuple, str]] = []
    for problem in errors:
        location = tuple(problem["loc"])
        index = next(
            (i for i, part in enumerate(location) if isinstance(part, str) and part in classes), None
        )
        if index is None:
            plain.append((location, problem["msg"]))
            continue
        stripped = tuple(p for p in location if not (isinstance(p, str) and p in classes))
        branches.setdefault(location[:index], {}).setdefault(location[index], []).append(
            (stripped, problem["msg"])
        )
    kept = list(plain)
    for by_branch in branches.values():
        kept += min(by_branch.values(), key=len)
    return list(dict.fromkeys(kept))
