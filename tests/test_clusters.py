"""Cluster configs: YAML loading, and Kubernetes resources against the operator's CRDs."""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

from daskgmm.clusters import cluster, kubernetes_cluster_spec, load_config, validate_kubernetes_resource

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "cluster_configs"
MANIFESTS = sorted((CONFIGS / "kubernetes").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_shipped_manifests_validate_against_the_crds(path):
    for doc in yaml.safe_load_all(path.read_text()):
        validate_kubernetes_resource(doc)


def test_generated_cluster_spec_validates():
    spec = kubernetes_cluster_spec(load_config(CONFIGS / "kubernetes.yaml"), n_workers=3)
    assert spec["kind"] == "DaskCluster" and spec["spec"]["worker"]["replicas"] == 3
    validate_kubernetes_resource(spec)


@pytest.mark.parametrize(
    "break_it, match",
    [
        (lambda d: d["spec"]["cluster"]["spec"]["worker"].update(replicas="four"), "replicas"),
        (lambda d: d["spec"]["cluster"]["spec"]["worker"].update(replica=4), "replica"),
        (lambda d: d["spec"].pop("job"), "'job' is a required property"),
        (lambda d: d.update(apiVersion="kubernetes.dask.org/v9"), "apiVersion"),
        (lambda d: d.update(kind="DaskThing"), "not a Dask operator resource"),
    ],
)
def test_the_check_rejects_invalid_manifests(break_it, match):
    doc = yaml.safe_load((CONFIGS / "kubernetes" / "daskjob.yaml").read_text())
    bad = copy.deepcopy(doc)
    break_it(bad)
    with pytest.raises(ValueError, match=match):
        validate_kubernetes_resource(bad)


def test_unknown_kubernetes_options_are_refused():
    with pytest.raises(ValueError, match=r"unknown Kubernetes cluster option\(s\) \['replicas'\]"):
        kubernetes_cluster_spec({"replicas": 3})


def test_slurm_config_is_a_mapping_of_jobqueue_arguments():
    from dask_jobqueue import SLURMCluster

    conf = load_config(CONFIGS / "slurm.yaml")
    assert conf["cores"] == 4 and conf["queue"] == "debug"
    with SLURMCluster(**conf, scheduler_options={"dashboard_address": None}) as slurm:
        script = slurm.job_script()
    assert "#SBATCH -p debug" in script and "#SBATCH --requeue" in script


def test_bad_configs_and_names(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(FileNotFoundError, match="cluster config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="cluster must be one of"):
        with cluster("nonsense"):
            pass


def test_local_cluster_is_closed_after_an_error():
    with pytest.raises(RuntimeError):
        with cluster("local", n_workers=1, dashboard=False) as client:
            address = client.scheduler.address
            raise RuntimeError("boom")
    from distributed import Client

    with pytest.raises(OSError):
        Client(address, timeout=2)
