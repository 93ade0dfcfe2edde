# %% [markdown]
# # Fitting on a Dask cluster, with progress
#
# A notebook-style script (cells marked `# %%`, which Jupyter, VS Code and
# jupytext open as a notebook). It connects to a cluster, fits a mixture to data
# generated on the workers, and shows progress per iteration.
#
#     python examples/cluster_fit.py                      # a LocalCluster of 2 workers
#     DASKGMM_CLUSTER=tcp://scheduler:8786 python examples/cluster_fit.py
#
# For SLURM: `cluster("slurm", config="cluster_configs/slurm.yaml", n_workers=4)`.

# %%
import logging
import os

import distributed  # noqa: F401  (sets its log levels when imported; ours come after)
import numpy as np

from daskgmm import GaussianMixture
from daskgmm.clusters import cluster
from daskgmm.demo import make_blobs

# Progress: daskgmm logs every EM iteration (lower bound, change, seconds) and
# every k-means|| round on the "daskgmm" logger.
logging.basicConfig(format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
logging.getLogger("daskgmm").setLevel(logging.INFO)
logging.getLogger("distributed").setLevel(logging.WARNING)

# %%
# (Worker processes start by importing this file: as a script, the cluster must
# be made under the __main__ guard. In a notebook __name__ is "__main__" too.)
if __name__ == "__main__":
    name = os.environ.get("DASKGMM_CLUSTER", "local")
    with cluster(name, n_workers=2) as client:
        print("dashboard:", client.dashboard_link if client is not None else "(threads: none)")

        # 400,000 x 8 rows from 5 components, generated chunk by chunk on the workers.
        X, truth, _ = make_blobs(400_000, 8, 5, chunks=50_000, random_state=1)
        gm = GaussianMixture(5, covariance_type="full", random_state=0).fit(X)

        # %%
        print(f"{gm.n_iter_} iterations, converged={gm.converged_}")
        print("lower bounds:", [round(b, 4) for b in gm.lower_bounds_])
        print("weights:", gm.weights_.round(3))

        # %% Labels stay on the cluster until asked for.
        labels = gm.predict(X)
        print("label counts:", np.bincount(labels.compute()))
