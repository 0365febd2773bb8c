"""Makes the JSON schemas kubeconform checks the Helm chart's manifests against, offline.

Theory of operation: kubeconform looks a manifest's schema up by a file-name template,
``{{.NormalizedKubernetesVersion}}/{{.ResourceKind}}{{.KindSuffix}}.json``
(``v1.37.0/statefulset-apps-v1.json``, ``v1.37.0/servicemonitor-monitoring-v1.json``), and
needs each file whole. Two sources, both from
package registries (scripts/k8s-tools brings them):

* PyPI's kubernetes-validate bundles Kubernetes' own schemas per release, in "local-strict"
  form (no unknown field allowed), but each kind's file refers to a shared
  ``/api/_definitions.json`` by an absolute reference that resolves to a web address. Each
  kind's file is made standalone here: the references point into the file itself
  (``#/$defs/NAME``), which carries the definitions it reaches, and those only.
* prometheus-operator's CRD for ServiceMonitor (a Go module): its ``openAPIV3Schema`` made a
  JSON schema the way kubeconform's own openapi2jsonschema does in strict mode (no unknown
  field where the CRD lists the fields, ``nullable`` and ``x-kubernetes-int-or-string``
  spelled as JSON schema types).

    k8s_schemas.py --wheel WHL --kubernetes 1.25.0 [--kubernetes ...] --crd CRD.yaml [--crd ...] --out DIR
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

import yaml

_SHARED_REF = re.compile(r"^/api/_definitions\.json#/\$defs/(.+)$")


def kubernetes_schemas(wheel: Path, version: str, out: Path) -> int:
    """Every top-level kind of Kubernetes ``version`` as a standalone strict schema; the count."""
    with zipfile.ZipFile(wheel) as z:
        prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
        names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            sys.exit(f"{wheel.name} has no schemas of Kubernetes {version} (looked for {prefix})")
        definitions = json.loads(z.read(prefix + "_definitions.json"))["$defs"]
        count = 0
        for name in names:
            filename = name[len(prefix):]
            if filename.startswith("_") or filename == "all.json":
                continue
            schema = json.loads(z.read(name))
            if "x-kubernetes-group-version-kind" not in schema:
                continue  # a part of a kind (PodSpec...), never looked up by kubeconform
            (out / filename).write_text(json.dumps(standalone(schema, definitions)), encoding="utf-8")
            count += 1
    return count


def standalone(schema: dict, definitions: dict) -> dict:
    """``schema`` with its shared references made local, and the definitions they reach."""
    reached: dict[str, object] = {}
    pending: list[str] = []

    def localise(node):
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    match = _SHARED_REF.match(value)
                    name = match.group(1) if match else value.removeprefix("#/$defs/")
                    if name not in reached and name in definitions:
                        reached[name] = None
                        pending.append(name)
                    out[key] = f"#/$defs/{name}"
                else:
                    out[key] = localise(value)
            return out
        if isinstance(node, list):
            return [localise(v) for v in node]
        return node

    result = localise(schema)
    result.pop("$id", None)  # its base would send relative references to the web
    while pending:
        name = pending.pop()
        reached[name] = localise(definitions[name])
    result["$defs"] = reached
    return result


def crd_schemas(crd_file: Path, out: Path) -> list[str]:
    """One strict schema per served version of the CRD in ``crd_file``; the files written."""
    crd = yaml.safe_load(crd_file.read_text(encoding="utf-8"))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    written = []
    for version in crd["spec"]["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        # kubeconform's name for it: kind, the group's first label, the version
        filename = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
        (out / filename).write_text(json.dumps(schema), encoding="utf-8")
        written.append(filename)
    return written


def strict(node):
    """An OpenAPI v3 (CRD) schema as a JSON schema that refuses fields it does not list."""
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        for key in ("type", "format"):
            out.pop(key, None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="kubernetes-validate's wheel")
    parser.add_argument("--kubernetes", action="append", required=True,
                        help="a Kubernetes release, e.g. 1.37.0 (one directory each, v1.37.0)")
    parser.add_argument("--crd", type=Path, action="append", default=[], help="a CRD's YAML file")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for version in args.kubernetes:
        out = args.out / f"v{version}"
        out.mkdir(parents=True, exist_ok=True)
        count = kubernetes_schemas(args.wheel, version, out)
        crds = [name for crd in args.crd for name in crd_schemas(crd, out)]
        print(f"{count} Kubernetes {version} kinds, and {', '.join(crds) or 'no CRD'}, in {out}")


if __name__ == "__main__":
    main()
