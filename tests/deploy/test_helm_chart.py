"""The Helm chart (deploy/helm/zdm): linted, rendered for several value sets, the manifests
checked against Kubernetes' schemas (kubeconform, strict, the ServiceMonitor's from
prometheus-operator's CRD), and what they say checked against zdm itself: each instance's
zdm.yaml, as its init container writes it, is what `zdm proxy start` accepts with the pod's
environment and files; the probes ask the paths the proxy serves on the port it serves them;
the Secrets the pods read are there with the keys they read; one instance stays ready through
updates and drains. Values that cannot work fail `helm template` with what to do.

helm, kubeconform and the schemas come from scripts/k8s-tools (scripts/setup runs it); no
Kubernetes cluster and no Cassandra are needed.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from zdm.config.proxy_config import proxy_config
from zdm.config.zdmproxy_read import read as read_zdm_proxy_settings
from zdm.proxy.server import ProxyServer

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "zdm"
RELEASE, NAMESPACE = "mig", "apps"

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


@dataclass(frozen=True)
class Case:
    """A value set, the Secrets it expects to exist already (name: keys), and what it means."""

    values: dict
    existing_secrets: dict[str, set[str]] = field(default_factory=dict)
    namespace: str = NAMESPACE
    #: usernames zdm.yaml should get (None: that cluster is reached with no login)
    usernames: dict[str, str | None] = field(default_factory=lambda: {"origin": None, "target": None})


MINIMAL = {"origin": {"contactPoints": ["10.0.0.1", "10.0.0.2"]},
           "target": {"contactPoints": ["10.1.0.1"]}}

# zdm-proxy's own chart's values.yaml as it stands (k8s_helm_charts/zdm), with the contact points
# its `zdmproxy` Secret would hold, its Secrets by their names, and the image swapped for zdm's
ZDM_PROXY_STYLE = {
    "namespace": "zdmproxy",
    "proxy": {"count": 3, "logLevel": "INFO", "readMode": "PRIMARY_ONLY", "primaryCluster": "ORIGIN",
              "maxClientConnections": "1000", "metricsEnabled": "true",
              "resources": {"limits": {"cpu": "4000m", "memory": "2048Mi"},
                            "requests": {"cpu": "4000m", "memory": "2048Mi"}},
              "image": {"repository": "localhost/zdm", "pullPolicy": "IfNotPresent", "tag": ""}},
    "nameOverride": "", "fullnameOverride": "",
    "service": {"type": "ClusterIP", "port": 9942},
    "origin": {"contactPoints": ["10.0.0.1"], "port": 9042},
    "target": {"secureConnectBundle": {"existingSecret": "zdmproxy-scb", "key": "secure-connect-target.zip"}},
    "credentials": {"existingSecret": "zdmproxy"},
}

CASES = {
    "defaults": Case(MINIMAL),
    "three-tls-credentials": Case(
        {**MINIMAL, "proxy": {"count": 3, "tls": {"enabled": True, "cert": PEM, "key": KEY, "ca": PEM,
                                                  "requireClientAuth": True}},
         "origin": {"contactPoints": ["10.0.0.1"], "localDc": "dc1",
                    "tls": {"enabled": True, "existingSecret": "origin-tls", "caKey": "ca.crt",
                            "certKey": "tls.crt", "keyKey": "tls.key"}},
         "target": {"contactPoints": ["10.1.0.1"], "tls": {"enabled": True, "ca": PEM, "verifyHostname": False}},
         "credentials": {"origin": {"username": "cassandra", "password": "origin-secret"},
                         "target": {"username": "migrator", "password": "target-secret"}}},
        existing_secrets={"origin-tls": {"ca.crt", "tls.crt", "tls.key"}},
        usernames={"origin": "cassandra", "target": "migrator"}),
    "servicemonitor": Case(  # and TLS to target trusting the system's CAs (no Secret)
        {**MINIMAL, "proxy": {"count": 2}, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
         "target": {"contactPoints": ["10.1.0.1"], "tls": {"enabled": True}},
         "persistence": {"enabled": True, "size": "2Gi"}}),
    "zdm-proxy-style": Case(
        ZDM_PROXY_STYLE, namespace="zdmproxy",
        existing_secrets={"zdmproxy": {"origin_contact_points", "origin_port", "origin_username", "origin_password",
                                       "target_username", "target_password"},
                          "zdmproxy-scb": {"secure-connect-target.zip"}},
        usernames={"origin": "user-from-secret", "target": "user-from-secret"}),
    "single": Case({**MINIMAL, "proxy": {"count": 1}, "stateStore": "file"}),
}


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    """helm, kubeconform and the schema directory, as scripts/k8s-tools built them."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-tools"), "--print"], capture_output=True,
                         text=True, check=True).stdout
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    missing = [name for name in ("helm", "kubeconform") if not os.access(found[name], os.X_OK)]
    if not Path(found["schemas"], ".complete").exists():
        missing.append("the Kubernetes schemas")
    if missing:
        pytest.fail(f"{', '.join(missing)} not built: run scripts/setup (it runs scripts/k8s-tools, "
                    "which builds them from the Go module proxy once per machine)")
    return found


def helm(tools, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tools["helm"], *args], capture_output=True, text=True, timeout=120)


def values_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def template(tools, tmp_path: Path, values: dict, namespace: str = NAMESPACE) -> subprocess.CompletedProcess:
    return helm(tools, "template", RELEASE, str(CHART), "--namespace", namespace,
                "-f", str(values_file(tmp_path, values)))


@dataclass
class Rendered:
    text: str
    docs: list[dict]

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}"
        return found[0]

    @property
    def statefulset(self) -> dict:
        return self.one("StatefulSet")

    @property
    def pod(self) -> dict:
        return self.statefulset["spec"]["template"]["spec"]

    def container(self, name: str) -> dict:
        pod = self.pod
        (found,) = [c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == name]
        return found


def render(tools, tmp_path: Path, case: Case) -> Rendered:
    result = template(tools, tmp_path, case.values, case.namespace)
    assert result.returncode == 0, result.stderr
    return Rendered(result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d])


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request) -> Case:
    return CASES[request.param]


@pytest.fixture
def rendered(tools, tmp_path, case) -> Rendered:
    return render(tools, tmp_path, case)


# -- the tools' verdicts --------------------------------------------------------------------

def test_helm_lint(tools, tmp_path, case):
    result = helm(tools, "lint", "--strict", str(CHART), "--namespace", case.namespace,
                  "-f", str(values_file(tmp_path, case.values)))
    assert result.returncode == 0, result.stdout + result.stderr


def kubeconform(tools, manifests: Path, version: str, *options: str) -> subprocess.CompletedProcess:
    """kubeconform, strict (an unknown field, or a kind with no schema, is an error), against
    the schemas of Kubernetes ``version``."""
    location = str(Path(tools["schemas"], "{{.NormalizedKubernetesVersion}}", "{{.ResourceKind}}{{.KindSuffix}}.json"))
    return subprocess.run([tools["kubeconform"], "-strict", "-kubernetes-version", version, *options,
                           "-schema-location", location, str(manifests)],
                          capture_output=True, text=True, timeout=120)


def test_manifests_match_the_kubernetes_schemas(tools, tmp_path, rendered):
    """On the oldest Kubernetes the chart allows (kubeVersion) and the newest at hand; the
    ServiceMonitor against prometheus-operator's CRD."""
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(rendered.text, encoding="utf-8")
    versions = tools["kubernetes"].split()
    floor = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["kubeVersion"]
    assert floor.removeprefix(">=").removesuffix("-0") == versions[0]
    for version in versions:
        result = kubeconform(tools, manifests, version, "-summary", "-output", "json")
        assert result.returncode == 0, f"Kubernetes {version}: {result.stdout}{result.stderr}"
        summary = json.loads(result.stdout)["summary"]
        assert summary["valid"] == len(rendered.docs), summary
        assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0, summary


def test_kubeconform_refuses_what_the_schemas_do_not_allow(tools, tmp_path):
    """The check above can fail: an unknown field in the StatefulSet, and a ServiceMonitor's."""
    rendered = render(tools, tmp_path, CASES["servicemonitor"])
    rendered.statefulset["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    rendered.one("ServiceMonitor")["spec"]["endpoints"][0]["scrapeEvery"] = "30s"
    manifests = tmp_path / "broken.yaml"
    manifests.write_text(yaml.safe_dump_all(rendered.docs), encoding="utf-8")
    for version in tools["kubernetes"].split():
        result = kubeconform(tools, manifests, version)
        assert result.returncode != 0
        assert "livenesProbe" in result.stdout and "scrapeEvery" in result.stdout, result.stdout


# -- what the proxy gets --------------------------------------------------------------------

def instance_ip(i: int) -> str:
    return f"10.96.7.{10 + i}"


def secret_data(rendered: Rendered, case: Case, name: str) -> dict[str, str]:
    """A Secret's keys and values: the chart's, or a stand-in for one that exists already."""
    for secret in rendered.all("Secret"):
        if secret["metadata"]["name"] == name:
            return dict(secret.get("stringData", {}))
    assert name in case.existing_secrets, f"the pods read Secret {name}, which nothing makes"
    return {key: ("user-from-secret" if key.endswith("username") else f"{key}-content")
            for key in case.existing_secrets[name]}


def environment(rendered: Rendered, case: Case, container: dict, pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet sets it for ``pod_name``."""
    env = {}
    for var in container.get("env", []):
        source = var.get("valueFrom", {})
        if "value" in var:
            env[var["name"]] = var["value"]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod_name
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = secret_data(rendered, case, ref["name"])
            if ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
            else:
                assert ref.get("optional"), f"{var['name']}: Secret {ref['name']} has no key {ref['key']}"
        else:
            raise AssertionError(f"unexpected env source {var}")
    return env


def run_pod(rendered: Rendered, case: Case, ordinal: int, root: Path):
    """What `zdm proxy start` in pod ``ordinal`` reads: its init container writes zdm.yaml (the
    chart's own script, the instances' Services resolved to stand-in ClusterIPs), its Secrets
    are mounted where zdm.yaml says, and zdm's own precedence takes it with the container's
    environment. Returns (Config, the proxy container's environment)."""
    sts = rendered.statefulset
    pod_name = f"{sts['metadata']['name']}-{ordinal}"
    configmap = rendered.one("ConfigMap")["data"]
    etc = root / "etc" / "zdm"
    chart = root / "etc" / "zdm-chart"
    etc.mkdir(parents=True)
    chart.mkdir(parents=True)
    for key, text in configmap.items():
        (chart / key).write_text(text, encoding="utf-8")

    init = rendered.container("zdm-yaml")
    assert init["command"][:2] == ["python3", "/etc/zdm-chart/render-zdm-yaml.py"]
    env = environment(rendered, case, init, pod_name)
    services = env["INSTANCE_HOSTS"].split(",")  # as DNS would answer for each instance's Service
    env["INSTANCE_HOSTS"] = ",".join(instance_ip(i) for i in range(len(services)))
    script, source, output = (str(root) + path for path in init["command"][1:])
    result = subprocess.run([sys.executable, script, source, output], env={**env, "PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    proxy = rendered.container("proxy")
    claims = [c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])]
    for mount in proxy["volumeMounts"]:
        volumes = [v for v in rendered.pod["volumes"] if v["name"] == mount["name"]]
        assert len(volumes) + claims.count(mount["name"]) == 1, f"volume {mount['name']}"
        if not volumes:
            continue
        (volume,) = volumes
        if "secret" not in volume or not mount["mountPath"].startswith("/etc/zdm/"):
            continue
        data = secret_data(rendered, case, volume["secret"]["secretName"])
        items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
        target = etc / mount["mountPath"].removeprefix("/etc/zdm/")
        target.mkdir(parents=True)
        for item in items:
            assert item["key"] in data, f"Secret {volume['secret']['secretName']} has no key {item['key']}"
            (target / item["path"]).write_text(data[item["key"]], encoding="utf-8")

    args = proxy["args"]
    assert args[:2] == ["proxy", "start"] and args[args.index("--name") + 1] == "$(POD_NAME)"
    config_path = Path(args[args.index("--config") + 1])
    assert config_path == Path("/etc/zdm/zdm.yaml")
    proxy_env = environment(rendered, case, proxy, pod_name)
    config, from_zdm_proxy = proxy_config(etc / "zdm.yaml", None, proxy_env)
    assert from_zdm_proxy is None
    return config, proxy_env


def test_each_instance_gets_a_zdm_yaml_zdm_accepts(tmp_path, rendered, case):
    replicas = rendered.statefulset["spec"]["replicas"]
    port = rendered.one("Service", rendered.statefulset["metadata"]["name"])["spec"]["ports"][0]["port"]
    for ordinal in range(replicas):
        config, env = run_pod(rendered, case, ordinal, tmp_path / f"pod-{ordinal}")
        assert config.proxy.instances == tuple(f"{instance_ip(i)}:{port}" for i in range(replicas))
        assert config.proxy.advertise_host == instance_ip(ordinal)
        assert (config.proxy.listen_host, config.proxy.listen_port) == ("0.0.0.0", port)
        assert config.proxy.metrics_enabled and config.proxy.metrics_address == "0.0.0.0"
        expected_store = case.values.get("stateStore", "cassandra")
        assert config.state_store == expected_store
        listener = case.values.get("proxy", {}).get("tls", {})
        assert (config.proxy.tls is not None) == bool(listener.get("enabled"))
        if config.proxy.tls is not None:
            assert config.proxy.tls.require_client_auth == listener.get("requireClientAuth", False)
            assert (config.proxy.tls.ca_file is not None) == config.proxy.tls.require_client_auth
        for side in ("origin", "target"):
            cluster = getattr(config, side)
            tls = case.values[side].get("tls", {})
            assert (cluster.tls is not None) == bool(tls.get("enabled"))
            if cluster.tls is not None:  # each file zdm.yaml names is mounted (zdm checked that)
                assert (cluster.tls.ca_file is not None) == bool(tls.get("ca") or tls.get("existingSecret"))
                assert (cluster.tls.cert_file is not None) == bool(tls.get("cert") or tls.get("certKey"))
                assert cluster.tls.verify_hostname == tls.get("verifyHostname", True)
            assert cluster.username == case.usernames[side]
            if cluster.username:  # the password reaches zdm from the Secret, never through the file
                assert cluster.password and cluster.password == env[f"{side.upper()}_PASSWORD"]
                assert cluster.password not in rendered.one("ConfigMap")["data"]["zdm.yaml"]


def test_state_store_is_cassandra_by_default(tools, tmp_path):
    rendered = render(tools, tmp_path, CASES["defaults"])
    chart_yaml = yaml.safe_load(rendered.one("ConfigMap")["data"]["zdm.yaml"])
    assert chart_yaml["state_store"] == "cassandra"
    assert not any("persistentVolumeClaim" in v for v in rendered.pod["volumes"])
    assert "volumeClaimTemplates" not in rendered.statefulset["spec"]


def test_instances_follow_the_replicas(tools, tmp_path):
    for count in (1, 2, 5):
        case = Case({**MINIMAL, "proxy": {"count": count}, "stateStore": "file" if count == 1 else "cassandra"})
        rendered = render(tools, tmp_path, case)
        sts = rendered.statefulset
        assert sts["spec"]["replicas"] == count
        instances = [s for s in rendered.all("Service") if s["metadata"]["labels"].get("zdm-service") == "instance"]
        assert [s["metadata"]["name"] for s in instances] == [f"{sts['metadata']['name']}-{i}" for i in range(count)]
        for i, service in enumerate(instances):  # each one's selector is exactly its pod
            assert service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{sts['metadata']['name']}-{i}"
        hosts = rendered.container("zdm-yaml")["env"]
        (hosts,) = [e["value"] for e in hosts if e["name"] == "INSTANCE_HOSTS"]
        assert hosts.split(",") == [f"{s['metadata']['name']}.{NAMESPACE}.svc" for s in instances]
        config, _ = run_pod(rendered, case, count - 1, tmp_path / f"count-{count}")
        assert len(config.proxy.instances) == count


def test_probes_ask_the_health_endpoints_on_the_metrics_port(tmp_path, rendered, case):
    config, _ = run_pod(rendered, case, 0, tmp_path / "pod")
    # the paths the proxy serves (its HTTP endpoint's routes)
    served = inspect.getsource(ProxyServer._start_endpoint)
    proxy = rendered.container("proxy")
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    assert ports["metrics"] == config.proxy.metrics_port
    assert ports["cql"] == config.proxy.listen_port
    for probe, path in (("startupProbe", "/health/liveness"), ("livenessProbe", "/health/liveness"),
                        ("readinessProbe", "/health/readiness")):
        get = proxy[probe]["httpGet"]
        assert get["path"] == path and f'"{path}"' in served
        assert get["port"] in ("metrics", config.proxy.metrics_port)


def test_one_instance_stays_ready_through_updates_and_drains(rendered):
    sts = rendered.statefulset["spec"]
    replicas = sts["replicas"]
    update = sts["updateStrategy"]
    assert update["type"] == "RollingUpdate" and update["rollingUpdate"].get("partition", 0) == 0
    # one at a time (maxUnavailable 1: the StatefulSet default, said), each ready a while first
    assert update["rollingUpdate"].get("maxUnavailable", 1) == 1 and sts["minReadySeconds"] > 0
    pdb = rendered.one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= sts["template"]["metadata"]["labels"].items()
    if replicas > 1:
        assert replicas - update["rollingUpdate"].get("maxUnavailable", 1) >= 1
        assert replicas - pdb["maxUnavailable"] >= 1
    else:  # a drain waits for the operator rather than stop the only proxy
        assert pdb["minAvailable"] == 1


def test_every_secret_the_pods_read_exists(rendered, case):
    made = {s["metadata"]["name"]: s.get("stringData", {}) for s in rendered.all("Secret")}
    read = []
    for container in rendered.pod["containers"] + rendered.pod["initContainers"]:
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                read.append((ref["name"], ref["key"], ref.get("optional", False)))
    for volume in rendered.pod["volumes"]:
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            keys = [i["key"] for i in volume["secret"].get("items", [])]
            read += [(name, k, False) for k in keys] or [(name, None, False)]
    for name, key, optional in read:
        assert name in made or name in case.existing_secrets, f"Secret {name} is read but neither made nor given"
        keys = made.get(name, case.existing_secrets.get(name))
        assert key is None or optional or key in keys, f"Secret {name} has no key {key}"
    assert not set(made) - {name for name, _, _ in read}, "a Secret is made that no pod reads"


def test_services_and_servicemonitor_select_the_proxies(tools, tmp_path):
    rendered = render(tools, tmp_path, CASES["servicemonitor"])
    sts = rendered.statefulset
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    headless = rendered.one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    for service in rendered.all("Service"):
        selector = {k: v for k, v in service["spec"]["selector"].items() if k != "statefulset.kubernetes.io/pod-name"}
        assert selector.items() <= pod_labels.items()
    monitor = rendered.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selected = [s for s in rendered.all("Service")
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert selected == [headless]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in headless["spec"]["ports"]}
    # no Service environment variables: a Service named like zdm-metrics would give the proxy
    # ZDM_METRICS_PORT, a zdm-proxy setting zdm refuses beside a zdm.yaml
    assert rendered.pod["enableServiceLinks"] is False


def test_zdm_proxy_chart_values_mean_the_same_here(tools, tmp_path):
    case = CASES["zdm-proxy-style"]
    rendered = render(tools, tmp_path, case)
    assert {d["metadata"]["namespace"] for d in rendered.docs} == {"zdmproxy"}
    assert rendered.statefulset["spec"]["replicas"] == 3
    proxy = rendered.container("proxy")
    assert proxy["resources"] == ZDM_PROXY_STYLE["proxy"]["resources"]
    assert proxy["image"] == "localhost/zdm:" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert rendered.one("Service", rendered.statefulset["metadata"]["name"])["spec"]["ports"][0]["port"] == 9942
    config, _ = run_pod(rendered, case, 2, tmp_path / "pod")
    assert config.proxy.log_level == "info" and config.proxy.max_client_connections == 1000
    assert config.proxy.listen_port == 9942 and config.proxy.metrics_enabled
    assert config.target.secure_connect_bundle.name == "secure-connect-target.zip"
    assert config.origin.contact_points == ("10.0.0.1",) and config.origin.port == 9042


def test_the_image_tag_defaults_to_zdms_version():
    """appVersion is the default image tag: it names the zdm release the chart runs."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["appVersion"] == project["version"], "bump deploy/helm/zdm/Chart.yaml's appVersion with zdm's"


@pytest.mark.parametrize("level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC", "warning"])
def test_log_levels_mean_what_zdm_makes_of_them(tools, tmp_path, level):
    """zdm-proxy's levels (its chart's proxy.logLevel) as zdm reads them from zdm-proxy's own
    settings (ZDM_LOG_LEVEL), and zdm's."""
    rendered = render(tools, tmp_path, Case({**MINIMAL, "proxy": {"logLevel": level}}))
    config, _ = run_pod(rendered, CASES["defaults"], 0, tmp_path / "pod")
    as_zdm_proxy = read_zdm_proxy_settings(None, {"ZDM_ORIGIN_CONTACT_POINTS": "10.0.0.1",
                                                  "ZDM_TARGET_CONTACT_POINTS": "10.1.0.1",
                                                  "ZDM_LOG_LEVEL": level}).config()
    assert config.proxy.log_level == as_zdm_proxy.proxy.log_level


# -- values that cannot work ------------------------------------------------------------------

BAD = [
    pytest.param({"target": {"contactPoints": ["10.1.0.1"]}}, "origin.contactPoints is required",
                 id="no-origin-contact-points"),
    pytest.param({**MINIMAL, "target": {"contactPoints": "10.1.0.1"}}, "target.contactPoints must be a list",
                 id="contact-points-as-a-string"),
    pytest.param({**MINIMAL, "stateStore": "file"}, "use stateStore cassandra", id="file-store-with-three"),
    pytest.param({**MINIMAL, "proxy": {"count": 0}}, "proxy.count must be 1 or more", id="no-instance"),
    pytest.param({**MINIMAL, "proxy": {"metricsEnabled": False}}, "proxy.metricsEnabled must be true",
                 id="metrics-off"),
    pytest.param({**MINIMAL, "proxy": {"primaryCluster": "TARGET"}}, "zdm phase advance",
                 id="primary-cluster-target"),
    pytest.param({**MINIMAL, "proxy": {"tls": {"enabled": True}}}, "proxy.tls.enabled needs",
                 id="proxy-tls-without-certificate"),
    pytest.param({**MINIMAL, "origin": {"contactPoints": ["10.0.0.1"],
                                        "tls": {"enabled": True, "existingSecret": "s", "caKey": ""}}},
                 "origin.tls.existingSecret s is used for nothing", id="origin-tls-secret-unused"),
    pytest.param({**MINIMAL, "target": {"contactPoints": ["10.0.0.1"],
                                        "tls": {"enabled": True, "existingSecret": "s", "certKey": "tls.crt"}}},
                 "target.tls.certKey and target.tls.keyKey go together", id="target-client-cert-without-key"),
    pytest.param({**MINIMAL, "extraEnv": [{"name": "ZDM_ORIGIN_PORT", "value": "9043"}]},
                 "extraEnv ZDM_ORIGIN_PORT: zdm refuses", id="zdm-proxy-variable-in-extra-env"),
    pytest.param({**MINIMAL, "proxy": {"logLevel": "verbose"}}, "proxy.logLevel verbose: use debug",
                 id="unknown-log-level"),
    pytest.param({**MINIMAL, "extraConfig": {"proxy": {"instances": ["10.0.0.9:9042"]}}},
                 "extraConfig.proxy.instances: the chart sets it", id="instances-by-hand"),
]


@pytest.mark.parametrize("values, message", BAD)
def test_values_that_cannot_work_fail_with_what_to_do(tools, tmp_path, values, message):
    result = template(tools, tmp_path, values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
