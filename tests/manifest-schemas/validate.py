"""Schema validation for tests/tests/deploy.rs.

Checks Kubernetes objects against the API schemas of the Kubernetes versions
asked for (the strict schemas that the kubernetes-validate package ships),
and custom resources against the openAPIV3Schema of their
CustomResourceDefinition. Strict, as `kubectl apply` (whose field
validation is strict by default) and the API server are: a field that the
schema does not name is an error, except where a CRD schema says
`x-kubernetes-preserve-unknown-fields`.

The test does the reading and the rendering of kustomizations; this script
only validates. It reads one JSON request on stdin:

    {"kubernetes": ["1.30", ...],      versions to validate against
     "crds": [<CustomResourceDefinition>, ...],
     "objects": [<object>, ...]}

and writes a JSON list of problems on stdout, sorted, each

    {"object": <index into objects>, "against": "Kubernetes 1.30",
     "path": "spec.template.spec.containers[0].ports[0].containerPort",
     "message": "'80' is not of type 'integer', 'null'"}

It exits 0 when it could check everything (with problems or without), and
non-zero, saying why on stderr, when it could not (a version without
schemas, a malformed request).
"""

import copy
import json
import re
import sys
from importlib import resources

import jsonschema
from referencing import Registry, Resource

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class KubernetesSchemas:
    """The strict schemas of one Kubernetes version."""

    def __init__(self, version):
        self.version = version
        self.dir = (
            resources.files("kubernetes_validate")
            / "kubernetes-json-schema"
            / f"v{version}.0-local-strict"
        )
        if not self.dir.is_dir():
            sys.exit(f"kubernetes-validate ships no schemas for Kubernetes {version}")
        self.definitions = json.loads((self.dir / "_definitions.json").read_text())
        self.registry = Resource.from_contents(self.definitions) @ Registry()
        self.validators = {}

    def validator(self, api_version, kind):
        """The validator of `kind` in `api_version`, or None if this version has no such kind."""
        # core/v1 -> "v1"; apps/v1 -> "apps-v1"; policy/v1; apiextensions.k8s.io/v1 -> "apiextensions-v1"
        group, _, version = api_version.rpartition("/")
        prefix = group.split(".")[0] + "-" if group else ""
        name = f"{kind.lower()}-{prefix}{version}.json"
        if name not in self.validators:
            path = self.dir / name
            if not path.is_file():
                self.validators[name] = None
            else:
                schema = json.loads(path.read_text())
                self.validators[name] = jsonschema.Draft202012Validator(
                    schema, registry=self.registry
                )
        return self.validators[name]


def strict(schema):
    """A CRD schema with unknown fields refused: every object that neither
    lists `additionalProperties` nor preserves unknown fields gets
    `additionalProperties: false` (the API server prunes such fields, and
    strict field validation reports them)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


class CustomResources:
    """Validators for the kinds that the given CRDs define."""

    def __init__(self, crds, kubernetes):
        # Custom resources' metadata is a Kubernetes ObjectMeta, checked by
        # the API server; the newest version asked for supplies its schema.
        self.by_kind = {}
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = {}
                schema = strict(schema)
                schema["properties"]["metadata"] = {
                    "$ref": kubernetes.definitions["$id"] + "#/$defs/" + OBJECT_META
                }
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                self.by_kind[key] = (
                    f"CRD {crd['metadata']['name']} {version['name']}",
                    jsonschema.Draft202012Validator(schema, registry=kubernetes.registry),
                )
        self.groups = {crd["spec"]["group"] for crd in crds}

    def validator(self, api_version, kind):
        """(what it is, validator) for a kind of a CRD's group; None for another group."""
        if api_version.rpartition("/")[0] not in self.groups:
            return None
        return self.by_kind.get((api_version, kind), ("the CRDs of its group", None))


def path_of(parts):
    """spec.containers[0].image"""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(the object)"


def problems_of(validator, obj):
    """(path, message) for every error, an unknown field named by its own path."""
    for error in validator.iter_errors(obj):
        if error.validator == "additionalProperties" and error.validator_value is False:
            known = set(error.schema.get("properties", {}))
            patterns = error.schema.get("patternProperties", {})
            for field in error.instance:
                if field not in known and not any(re.search(p, field) for p in patterns):
                    yield path_of([*error.absolute_path, field]), "unknown field"
        else:
            yield path_of(error.absolute_path), error.message


def main():
    request = json.load(sys.stdin)
    if not request["kubernetes"]:
        sys.exit("no Kubernetes version to validate against")
    kubernetes = [KubernetesSchemas(v) for v in request["kubernetes"]]
    custom = CustomResources(request["crds"], kubernetes[-1])
    problems = set()
    for index, obj in enumerate(request["objects"]):
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            problems.add((index, "Kubernetes", "(the object)", "no apiVersion or kind"))
            continue
        found = custom.validator(api_version, kind)
        if found is not None:
            against, validator = found
            if validator is None:
                problems.add((index, against, "kind", f"no {kind} in {api_version}"))
                continue
            for path, message in problems_of(validator, obj):
                problems.add((index, against, path, message))
            continue
        for schemas in kubernetes:
            against = f"Kubernetes {schemas.version}"
            validator = schemas.validator(api_version, kind)
            if validator is None:
                problems.add((index, against, "kind", f"no {kind} in {api_version}"))
                continue
            for path, message in problems_of(validator, obj):
                problems.add((index, against, path, message))
    json.dump(
        [
            {"object": i, "against": a, "path": p, "message": m}
            for i, a, p, m in sorted(problems)
        ],
        sys.stdout,
    )


if __name__ == "__main__":
    main()
