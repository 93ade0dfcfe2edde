"""Making, or connecting to, the Dask cluster that a fit runs on.

``cluster(name)`` is a context manager usable from notebooks and the CLI alike::

    with cluster("local", n_workers=2) as client:   # None for "threads"
        GaussianMixture(8).fit(X)

Names:

``"threads"``
    no cluster: Dask's threaded scheduler in this process.
``"local"``
    a ``distributed.LocalCluster`` of worker processes.
``"slurm"``
    a ``dask_jobqueue.SLURMCluster``: every worker is a SLURM job.
``"kubernetes"``
    a ``dask_kubernetes.operator.KubeCluster`` (the Dask Kubernetes operator).
``"tcp://host:8786"`` (any address with ``://``)
    an existing scheduler.

``config`` is a mapping (or the path of a YAML file holding one) of keyword
arguments for the cluster class, e.g. ``cores``, ``memory``, ``walltime``,
``account`` for SLURM; ``image``, ``resources`` for Kubernetes. The cluster is
closed again when the block ends, also on error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Mapping

from . import slurm

__all__ = [
    "CLUSTER_KINDS",
    "cluster",
    "kubernetes_cluster_spec",
    "load_config",
    "validate_kubernetes_resource",
]

logger = logging.getLogger(__name__)

CLUSTER_KINDS = ("threads", "local", "slurm", "kubernetes")


def load_config(config: Mapping | str | os.PathLike | None) -> dict:
    """Keyword arguments for a cluster class, from a mapping or a YAML file."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    import yaml

    try:
        with open(config) as f:
            loaded = yaml.safe_load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"cluster config file not found: {config}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"cluster config {config} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(
            f"cluster config {config} must be a mapping of keyword arguments, got "
            f"{type(loaded).__name__}"
        )
    return loaded


def _optional(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"this cluster needs {module.split('.')[0].replace('_', '-')}: "
            f"pip install 'daskgmm[{extra}]'"
        ) from None


def kubernetes_cluster_spec(config: Mapping | None = None, *, n_workers: int | None = None) -> dict:
    """The ``DaskCluster`` resource (kubernetes.dask.org/v1) that ``"kubernetes"`` creates."""
    operator = _optional("dask_kubernetes.operator", "kubernetes")
    kwargs = dict(config or {})
    kwargs.setdefault("name", "daskgmm")
    if n_workers is not None:
        kwargs["n_workers"] = n_workers
    allowed = {"name", "image", "n_workers", "resources", "env", "worker_command",
               "scheduler_service_type", "idle_timeout", "jupyter"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(
            f"unknown Kubernetes cluster option(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    return operator.make_cluster_spec(**kwargs)


def _strict(schema):
    """Reject unknown fields, as ``kubectl --validate=strict`` does (a copy of ``schema``)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.get("type") == "object" and "properties" in out and not (
        out.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in out
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=1)
def _crds() -> dict:
    """The CustomResourceDefinitions that the installed dask-kubernetes ships, by kind
    (read once: parsing them takes seconds)."""
    import pathlib

    import yaml

    operator = _optional("dask_kubernetes.operator", "kubernetes")
    folder = pathlib.Path(operator.__file__).parent / "deployment/helm/dask-kubernetes-operator/crds"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds = {}
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)
        crds[crd["spec"]["names"]["kind"]] = crd
    if not crds:
        raise ImportError(f"no CRDs found in {folder}")
    return crds


@functools.cache
def _validator(kind: str, api_version: str):
    """A strict validator of one CRD version's schema (built once; the CRD schema
    itself is trusted, as shipped with dask-kubernetes)."""
    jsonschema = _optional("jsonschema", "kubernetes")
    crd = _crds()[kind]
    version = next(v for v in crd["spec"]["versions"]
                   if f"{crd['spec']['group']}/{v['name']}" == api_version)
    schema = _strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.validators.validator_for(schema)(schema)


def validate_kubernetes_resource(resource: Mapping) -> None:
    """Check a Dask operator resource (DaskCluster, DaskJob, ...) against its CRD.

    Uses the CRD schemas of the installed dask-kubernetes, strictly: unknown
    fields are errors. Raises ValueError naming the first problem.
    """
    jsonschema = _optional("jsonschema", "kubernetes")
    crds = _crds()
    kind = resource.get("kind")
    if kind not in crds:
        raise ValueError(f"kind {kind!r} is not a Dask operator resource ({', '.join(crds)})")
    crd = crds[kind]
    versions = {f"{crd['spec']['group']}/{v['name']}": v for v in crd["spec"]["versions"]}
    version = versions.get(resource.get("apiVersion"))
    if version is None:
        raise ValueError(
            f"apiVersion {resource.get('apiVersion')!r} of {kind} is not one of {sorted(versions)}"
        )
    if not resource.get("metadata", {}).get("name"):
        raise ValueError(f"{kind} needs metadata.name")
    body = {k: v for k, v in resource.items() if k not in ("apiVersion", "kind", "metadata")}
    try:
        _validator(kind, resource.get("apiVersion")).validate(body)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ValueError(f"{kind} is not valid at {where}: {exc.message}") from None


def _make_cluster(name: str, config: dict, n_workers: int | None, threads_per_worker: int,
                  dashboard: bool, refusals: list[str]):
    if name == "local":
        from distributed import LocalCluster

        kwargs = {"threads_per_worker": threads_per_worker, "processes": True} | config
        if n_workers is not None:
            kwargs["n_workers"] = n_workers
        if not dashboard:
            kwargs["dashboard_address"] = None
        return LocalCluster(**kwargs)
    if name == "slurm":
        jobqueue = _optional("dask_jobqueue", "slurm")
        kwargs = dict(config)
        if not dashboard:
            kwargs.setdefault("scheduler_options", {"dashboard_address": None})
        c = jobqueue.SLURMCluster(job_cls=slurm.job_class(refusals), **kwargs)
        logger.info("SLURM job script:\n%s", c.job_script())
        c.scale(jobs=n_workers or 1)
        return c
    if name == "kubernetes":
        operator = _optional("dask_kubernetes.operator", "kubernetes")
        spec = kubernetes_cluster_spec(config, n_workers=n_workers)
        return operator.KubeCluster(custom_cluster_spec=spec)
    raise ValueError(
        f"cluster must be one of {CLUSTER_KINDS} or a scheduler address such as "
        f"'tcp://host:8786', got {name!r}."
    )


@contextlib.contextmanager
def cluster(
    name: str = "threads",
    *,
    config: Mapping | str | os.PathLike | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard: bool = True,
    wait_for_workers: int | None = None,
    timeout: float = 300,
) -> Iterator[object | None]:
    """Yield a ``distributed.Client`` for ``name`` (None for ``"threads"``).

    With ``wait_for_workers`` the block starts only once that many workers have
    joined (batch systems start them as their jobs are scheduled). On SLURM a
    refused worker job ends the wait at once (:class:`~daskgmm.errors.ClusterError`
    with sbatch's message), pending jobs and their reason are logged, and the
    ``TimeoutError`` after ``timeout`` seconds compares what the jobs ask for
    with what the partition offers.
    """
    if name == "threads":
        yield None
        return
    from distributed import Client

    if "://" in name:
        with Client(name, timeout=timeout) as client:
            yield client
        return
    conf = load_config(config)
    if name == "slurm":
        conf = {"cores": threads_per_worker, "memory": "2GiB"} | conf
    refusals: list[str] = []  # sbatch's messages for refused worker jobs
    with _make_cluster(name, conf, n_workers, threads_per_worker, dashboard, refusals) as c:
        with Client(c) as client:
            if wait_for_workers and name == "slurm":
                slurm.wait_for_workers(client, c, wait_for_workers, timeout, conf, refusals)
            elif wait_for_workers:
                client.wait_for_workers(wait_for_workers, timeout=timeout)
            yield client
