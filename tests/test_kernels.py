"""Chunk kernels against naive references (scipy.stats densities, plain NumPy sums)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import TYPES, dense_covariances, naive_weighted_log_prob, random_params

from daskgmm import blocks, kernels, row_kernels
from daskgmm.covariance import COVARIANCE
from daskgmm.params import GMMParams, StatsLayout, SufficientStatistics

@pytest.mark.parametrize("covariance_type", TYPES)
def test_log_prob_matches_scipy(covariance_type):
    p = random_params(covariance_type)
    X = np.random.default_rng(2).normal(scale=3, size=(5000, 4))
    got = row_kernels.chunk_log_prob(X, *p.kernel_args)
    want = naive_weighted_log_prob(X, p)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    lse = np.logaddexp.reduce(want, axis=1)
    np.testing.assert_allclose(row_kernels.chunk_score_samples(X, *p.kernel_args), lse, rtol=1e-10)
    resp = row_kernels.chunk_responsibilities(X, *p.kernel_args)
    np.testing.assert_allclose(resp, np.exp(want - lse[:, None]), atol=1e-12)
    np.testing.assert_array_equal(row_kernels.chunk_labels(X, *p.kernel_args), want.argmax(axis=1))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_statistics_match_naive_sums(covariance_type):
    p = random_params(covariance_type)
    X = np.random.default_rng(3).normal(scale=3, size=(7000, 4))  # several sub-blocks
    vec = kernels.chunk_statistics(X, *p.kernel_args)[0]
    st = SufficientStatistics.from_vector(vec, p.means, covariance_type)
    wlp = naive_weighted_log_prob(X, p)
    lse = np.logaddexp.reduce(wlp, axis=1)
    r = np.exp(wlp - lse[:, None])
    diff = X[None] - p.means[:, None]
    assert st.n_samples == 7000 and st.n_nonfinite == 0
    np.testing.assert_allclose(st.log_lik_sum, lse.sum(), rtol=1e-12)
    np.testing.assert_allclose(st.nk, r.sum(0), rtol=1e-12)
    np.testing.assert_allclose(st.sk, np.einsum("nk,knd->kd", r, diff), rtol=1e-10, atol=1e-9)
    full = np.einsum("nk,kni,knj->kij", r, diff, diff)
    want = {
        "full": full,
        "tied": full.sum(0),
        "diag": np.einsum("kii->ki", full),
        "spherical": np.einsum("kii->ki", full),
    }[covariance_type]
    np.testing.assert_allclose(st.Sk, want, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_statistics_of_parts_add_up(covariance_type):
    """Summarising X in parts (uneven, one empty) equals summarising it at once."""
    p = random_params(covariance_type)
    X = np.random.default_rng(4).normal(scale=3, size=(3001, 4))
    whole = kernels.chunk_statistics(X, *p.kernel_args)
    parts = sum(
        kernels.chunk_statistics(X[a:b], *p.kernel_args)
        for a, b in [(0, 1), (1, 1), (1, 1000), (1000, 3001)]
    )
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-9)


def _unaligned(a):
    """``a`` copied to an address that is not a multiple of its item size, as Dask
    may hand a chunk to a task (an array inside a pickle's frame)."""
    buf = np.empty(a.nbytes + a.itemsize, dtype=np.uint8)
    out = np.frombuffer(buf[1 : 1 + a.nbytes], dtype=a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_statistics_do_not_depend_on_where_the_chunk_lies_in_memory(covariance_type, dtype):
    """A chunk at an unaligned address, with rows with NaN marginalised and the
    worst rows tracked, gives bitwise the statistics of an aligned copy, and so
    does a second chunk on the same thread (its work arrays kept from the first)."""
    p = random_params(covariance_type)
    rng = np.random.default_rng(8)
    X = rng.normal(scale=3, size=(30_000, 4)).astype(dtype)
    X[rng.random(X.shape) < 0.05] = np.nan
    X[17] = np.nan  # every feature missing
    args = (*p.kernel_args, 5, True)
    aligned = kernels.chunk_statistics(X, *args, reg_covar=1e-6)
    for block in (_unaligned(X), X):
        np.testing.assert_array_equal(kernels.chunk_statistics(block, *args, reg_covar=1e-6),
                                      aligned)
    complete = np.ascontiguousarray(X[~np.isnan(X).any(axis=1)])
    np.testing.assert_array_equal(kernels.chunk_statistics(_unaligned(complete), *p.kernel_args),
                                  kernels.chunk_statistics(complete, *p.kernel_args))


def test_a_thread_keeps_its_work_arrays_from_one_chunk_task_to_the_next():
    with blocks.Workspace.of_thread() as ws:
        kept = ws("small", (1000,))
        ws("large", (blocks._RETAINED_BYTES // 8 + 1,))
        with blocks.Workspace.of_thread() as inner:  # in use further up: a fresh one
            assert inner is not ws
        assert np.shares_memory(ws("small", (10,)), kept)
    with blocks.Workspace.of_thread() as again:
        assert again is ws
        assert np.shares_memory(again("small", (1000,)), kept)
        assert "large" not in again._arrays  # more than the budget: not kept
        for i in range(8):  # a budget for all the buffers, the smallest kept
            again(f"part{i}", (blocks._RETAINED_BYTES // 8 // 6,))
    with blocks.Workspace.of_thread() as last:
        parts = [n for n in last._arrays if n.startswith("part")]
        assert "small" in last._arrays and 0 < len(parts) < 8
        assert sum(a.nbytes for a in last._arrays.values()) <= blocks._RETAINED_BYTES
    other = []

    def task():
        with blocks.Workspace.of_thread() as own:
            other.append(own)

    thread = threading.Thread(target=task)
    thread.start()
    thread.join()
    assert other[0] is not ws


def test_empty_chunk_gives_zero_statistics():
    p = random_params("full")
    out = kernels.chunk_statistics(np.empty((0, 4)), *p.kernel_args)
    assert out.shape == (1, StatsLayout(3, 4, "full").size)
    assert not out.any()


def test_nonfinite_rows_are_counted_and_left_out():
    p = random_params("diag")
    X = np.random.default_rng(5).normal(size=(100, 4))
    bad = X.copy()
    bad[3, 1] = np.nan
    bad[50, 0] = np.inf
    st = SufficientStatistics.from_vector(
        kernels.chunk_statistics(bad, *p.kernel_args)[0], p.means, "diag"
    )
    ok = SufficientStatistics.from_vector(
        kernels.chunk_statistics(np.delete(X, [3, 50], axis=0), *p.kernel_args)[0], p.means, "diag"
    )
    assert st.n_nonfinite == 2
    np.testing.assert_allclose(st.nk, ok.nk)
    np.testing.assert_allclose(st.Sk, ok.Sk)


def test_float32_block_stays_accurate_far_from_origin():
    """Centring on the means keeps float32 statistics accurate for offset data."""
    rng = np.random.default_rng(6)
    X64 = rng.normal(size=(20000, 3)) + 1e4
    p = GMMParams(
        np.array([1.0]),
        X64.mean(0, keepdims=True),
        np.eye(3)[None],
        np.eye(3)[None],
        "full",
    )
    v32 = kernels.chunk_statistics(X64.astype(np.float32), *p.kernel_args)[0]
    st = SufficientStatistics.from_vector(v32, p.means, "full")
    cov = st.Sk[0] / st.nk[0] - np.outer(st.sk[0], st.sk[0]) / st.nk[0] ** 2
    np.testing.assert_allclose(cov, np.cov(X64.astype(np.float32).astype(np.float64).T, bias=True), atol=2e-3)


def test_random_responsibilities_do_not_depend_on_chunking():
    X = np.random.default_rng(8).normal(size=(1000, 3))
    C = np.zeros((5, 3))

    def run(a, b):
        info = [{"array-location": [(a, b), (0, 3)]}]
        return kernels.chunk_random_statistics(X[a:b], C, "full", 42, block_info=info)

    np.testing.assert_allclose(run(0, 1000), run(0, 333) + run(333, 1000), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
@pytest.mark.parametrize("separation", [30.0, 1e4])
def test_expanded_models_stay_accurate_for_far_apart_means(covariance_type, separation):
    """Expanded features where the cancellation is small, centred data where it is not."""
    p = random_params(covariance_type)
    p = GMMParams(p.weights, p.means * separation, p.covariances, p.precisions_cholesky, covariance_type)
    model = blocks.Model(*p.kernel_args, np.float64)
    assert (model.expanded is None) == (separation > 1e3)
    rng = np.random.default_rng(9)
    X = p.means[rng.integers(3, size=6000)] + rng.normal(size=(6000, 4))
    wlp = naive_weighted_log_prob(X, p)
    np.testing.assert_allclose(row_kernels.chunk_log_prob(X, *p.kernel_args), wlp, rtol=1e-10)
    r = np.exp(wlp - np.logaddexp.reduce(wlp, axis=1)[:, None])
    diff = X[None] - p.means[:, None]
    st = SufficientStatistics.from_vector(kernels.chunk_statistics(X, *p.kernel_args)[0], p.means, covariance_type)
    np.testing.assert_allclose(st.sk, np.einsum("nk,knd->kd", r, diff), rtol=1e-8, atol=1e-8)
    if covariance_type == "tied":
        want = np.einsum("nk,kni,knj->ij", r, diff, diff)
    else:
        want = np.einsum("nk,knd->kd", r, diff**2)
    np.testing.assert_allclose(st.Sk, want, rtol=1e-9)


def test_the_full_expansion_is_taken_only_where_its_rounding_is_far_below_reg_covar():
    """An EM pass (``reg_covar`` given) may take the full expansion (its features
    are float64 whatever the rows' dtype); its statistics equal the naive ones, and differ from the centred
    kernel's by far less than the ``reg_covar`` the M-step adds."""
    p = random_params("full")
    rng = np.random.default_rng(11)
    X = p.means[rng.integers(3, size=6000)] + rng.normal(size=(6000, 4))

    def expanded(params, dtype=np.float64, reg_covar=1e-6):
        return blocks.Model(*params.kernel_args, dtype, reg_covar).expanded is not None

    assert expanded(p)
    assert not expanded(p, reg_covar=0.0)  # reg_covar=0: a collapse keeps its exact zero
    assert expanded(p, np.float32)
    far = GMMParams(p.weights, p.means * 30, p.covariances, p.precisions_cholesky, "full")
    assert not expanded(far)  # the rounding would reach reg_covar
    assert expanded(far, reg_covar=10.0)

    def stats(reg_covar, n_worst=0):
        out = kernels.chunk_statistics(X, *p.kernel_args, n_worst, reg_covar=reg_covar)[0]
        return SufficientStatistics.from_vector(out[: StatsLayout(3, 4, "full").size], p.means,
                                                "full"), out

    fast, centred = stats(1e-6)[0], stats(0.0)[0]
    wlp = naive_weighted_log_prob(X, p)
    r = np.exp(wlp - np.logaddexp.reduce(wlp, axis=1)[:, None])
    diff = X[None] - p.means[:, None]
    np.testing.assert_allclose(fast.nk, r.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fast.sk, np.einsum("nk,knd->kd", r, diff), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fast.Sk, np.einsum("nk,kni,knj->kij", r, diff, diff), rtol=1e-10)
    assert fast.log_lik_sum == pytest.approx(np.logaddexp.reduce(wlp, axis=1).sum(), rel=1e-13)
    assert np.abs(fast.Sk / fast.nk[:, None, None] - centred.Sk / centred.nk[:, None, None]).max() \
        < 1e-3 * 1e-6
    # the worst rows of a pass are the same rows
    w_fast, w_centred = stats(1e-6, 4)[1], stats(0.0, 4)[1]
    size = StatsLayout(3, 4, "full").size
    np.testing.assert_array_equal(w_fast[size:].reshape(4, 5)[:, 1:],
                                  w_centred[size:].reshape(4, 5)[:, 1:])


@pytest.mark.parametrize("covariance_type", TYPES)
def test_component_of_zero_weight_gets_no_rows(covariance_type):
    p = random_params(covariance_type)
    p = GMMParams(np.array([0.5, 0.5, 0.0]), p.means, p.covariances, p.precisions_cholesky, covariance_type)
    X = np.random.default_rng(10).normal(scale=3, size=(3000, 4))
    with np.errstate(divide="ignore"):
        want = naive_weighted_log_prob(X, p)
    got = row_kernels.chunk_log_prob(X, *p.kernel_args)
    assert np.all(got[:, 2] == -np.inf)
    np.testing.assert_allclose(got[:, :2], want[:, :2], rtol=1e-10)
    st = SufficientStatistics.from_vector(kernels.chunk_statistics(X, *p.kernel_args)[0], p.means, covariance_type)
    assert st.nk[2] == 0 and np.isfinite(st.Sk).all() and np.isfinite(st.log_lik_sum)


def _case(covariance_type, case, dtype, seed=11):
    """Parameters and rows drawn from them: ``plain``; ``far`` (means at 1e4, unit
    spread); ``singular`` (covariances with eigenvalues down to 1e-6 of the largest)."""
    rng = np.random.default_rng(seed)
    k, d, n = 3, 4, 6000
    p = random_params(covariance_type, k=k, d=d, seed=seed)
    cov = p.covariances
    if case == "singular":
        q = np.linalg.qr(rng.normal(size=(d, d)))[0]
        scales = np.array([1.0, 0.3, 1e-3, 1e-6])
        full = q @ np.diag(scales) @ q.T
        cov = {
            "full": np.stack([full * (1 + i) for i in range(k)]),
            "tied": full,
            "diag": np.tile(scales, (k, 1)),
            "spherical": np.array([1e-6, 1.0, 3.0]),
        }[covariance_type]
    means = p.means + (1e4 if case == "far" else 0.0)
    if case == "singular":
        means = rng.normal(scale=0.01, size=(k, d))
    cov_type = COVARIANCE[covariance_type]
    p = GMMParams(p.weights, means, cov, cov_type.precision_cholesky(cov), covariance_type)
    lab = rng.integers(k, size=n)
    dense = dense_covariances(p)
    X = means[lab] + np.einsum("nij,nj->ni", np.linalg.cholesky(dense)[lab], rng.normal(size=(n, d)))
    return p, X.astype(dtype)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["plain", "far", "singular"])
def test_statistics_match_scipy_reference(covariance_type, dtype, case):
    """One E-step and its statistics against scipy.stats densities and naive sums in
    float64 over the same (float32 or float64) values."""
    p, X = _case(covariance_type, case, dtype)
    X64 = X.astype(np.float64)
    wlp = naive_weighted_log_prob(X64, p)
    lse = np.logaddexp.reduce(wlp, axis=1)
    r = np.exp(wlp - lse[:, None])
    diff = X64[None] - p.means[:, None]
    full = np.einsum("nk,kni,knj->kij", r, diff, diff)
    want_S = {"full": full, "tied": full.sum(0)}.get(covariance_type, np.einsum("kii->ki", full))
    st = SufficientStatistics.from_vector(
        kernels.chunk_statistics(X, *p.kernel_args)[0], p.means, covariance_type
    )
    # float64: rounding only; float32: the products of the E-step in float32
    rtol = 1e-9 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(st.log_lik_sum, lse.sum(), rtol=rtol)
    np.testing.assert_allclose(st.nk, r.sum(0), rtol=rtol, atol=rtol * len(X))
    scale = np.sqrt(np.einsum("kii->ki", full) * r.sum(0)[:, None])  # of s_k
    np.testing.assert_allclose(st.sk, np.einsum("nk,knd->kd", r, diff), atol=10 * rtol * scale.max())
    np.testing.assert_allclose(st.Sk, want_S, rtol=10 * rtol, atol=10 * rtol * np.abs(want_S).max())
    got = row_kernels.chunk_log_prob(X, *p.kernel_args)
    np.testing.assert_allclose(got, wlp, rtol=rtol, atol=rtol * np.abs(wlp).max())


@pytest.mark.parametrize("covariance_type", TYPES)
def test_far_components_get_responsibilities_of_exactly_zero_or_as_the_reference(covariance_type):
    """Clusters far apart: most log-responsibilities lie far below e^-700, some
    between e^-745 and e^-700 (subnormal). Below 1.5e-304 a responsibility is
    flushed to 0 (NumPy's exp and the products slow down 10-70x on such values);
    the statistics equal the naive ones, whose responsibilities there are
    subnormal or 0, to rounding."""
    p = random_params(covariance_type)
    p = GMMParams(p.weights, p.means * 12.0, p.covariances, p.precisions_cholesky,
                  covariance_type)
    rng = np.random.default_rng(4)
    X = p.means[rng.integers(3, size=9000)] + rng.normal(scale=2.0, size=(9000, 4))
    t = rng.random((3000, 1))  # rows on the way from one mean to another: every gap
    X = np.vstack([X, p.means[0] + t * (p.means[1] - p.means[0])])
    wlp = naive_weighted_log_prob(X, p)
    lse = np.logaddexp.reduce(wlp, axis=1)
    gap = wlp - lse[:, None]
    assert (gap < -745).any() and ((gap > -745) & (gap < -700)).any()  # both bands present
    r = np.exp(gap)
    st = SufficientStatistics.from_vector(kernels.chunk_statistics(X, *p.kernel_args)[0],
                                          p.means, covariance_type)
    np.testing.assert_allclose(st.log_lik_sum, lse.sum(), rtol=1e-12)
    np.testing.assert_allclose(st.nk, r.sum(0), rtol=1e-12)
    diff = X[None] - p.means[:, None]
    np.testing.assert_allclose(st.sk, np.einsum("nk,knd->kd", r, diff), rtol=1e-9, atol=1e-8)
    resp = row_kernels.chunk_responsibilities(X, *p.kernel_args)
    assert (resp[gap < -700] == 0).all()  # flushed, not subnormal
    np.testing.assert_allclose(resp, r, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_fused_kernels_equal_the_numpy_sub_block_loop(covariance_type, dtype, monkeypatch):
    """The compiled kernels (:mod:`daskgmm.fused`) and the NumPy loop over sub-blocks
    give the same statistics, scores and worst rows: with sample weights, rows with
    NaN (marginalised, one to three of four features, mixed) and with inf (left
    out), a component of zero weight, and
    rows so far from some components that their responsibilities underflow, and a
    row with every feature missing."""
    p = random_params(covariance_type, k=3, d=4, seed=3)
    weights = np.array([0.6, 0.4, 0.0])
    rng = np.random.default_rng(4)
    X = (p.means[rng.integers(2, size=7000)] + rng.normal(size=(7000, 4))).astype(dtype)
    X[:50] += 60.0  # responsibilities of e^-700 and below: flushed to zero
    X[100, 2] = X[2000, 0] = np.nan
    X[3000, 1] = np.inf
    X[4000] = np.nan  # no feature observed: counted as empty
    X[4500:5800, 1] = np.nan  # whole sub-blocks of rows with NaN
    # patterns of one to three features missing, mixed (the compiled kernels pad them)
    gaps = rng.random((1000, 4)) < 0.4
    gaps[gaps.all(axis=1), 0] = False
    X[6000:][gaps] = np.nan
    sw = rng.uniform(0.0, 2.0, size=len(X))
    args = (weights, p.means, p.precisions_cholesky, covariance_type)
    assert blocks.Model(*args, dtype, 1e-6).expanded is not None
    for w in (None, sw):
        out = {}
        for fused in (False, True):
            monkeypatch.setattr(kernels, "FUSED", fused)
            # the compiled kernels work in float64 whatever the rows' dtype; the NumPy
            # loop takes the full type's rows with NaN in float32 for float32 rows
            # (4e-4 off): it is given them in float64
            rows = X if fused else X.astype(np.float64)
            with np.errstate(invalid="ignore"):  # the row with inf, in the NumPy loop
                out[fused] = kernels.chunk_statistics(rows, *args, n_worst=4, marginalize=True,
                                                      sample_weight=w, reg_covar=1e-6)[0]
        # the sub-blocks differ (so does the order of the sums) and so does exp, by an ulp
        np.testing.assert_allclose(out[True], out[False], rtol=1e-9, atol=1e-9)
        size = StatsLayout(3, 4, covariance_type).size
        worst = [o[size:].reshape(4, 5) for o in (out[True], out[False])]
        np.testing.assert_array_equal(worst[0][:, 1:], worst[1][:, 1:])  # the same rows
        np.testing.assert_allclose(worst[0][:, 0], worst[1][:, 0], rtol=1e-14)
        assert out[True][2] == 1 and out[True][4] == 1  # the row with inf; the empty one


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_quadratic_forms_and_whitening_give_the_numpy_loops_statistics(dtype, monkeypatch):
    """Full models' compiled kernel takes the log-probabilities as quadratic forms
    on the second moments' features, or, where their rounding could exceed
    ``_QUADRATIC_ROUNDING`` (an ill-conditioned covariance), by whitening: both
    give the NumPy loop's statistics, and the quadratic forms are refused there."""
    from daskgmm.covariance import full

    rng = np.random.default_rng(5)
    p = random_params("full", k=3, d=5, seed=6)
    ill = p.covariances.copy()
    u = rng.normal(size=5)
    ill[1] = np.eye(5) * 1e-6 + np.outer(u, u)  # condition about 1e7
    means = p.means.copy()
    means[1] = (means[0] + means[2]) / 2  # at the mean of the means: the expansion is taken
    cases = {"well": p, "ill": GMMParams(p.weights, means, ill,
                                         COVARIANCE["full"].precision_cholesky(ill), "full")}
    for name, q in cases.items():
        labels = rng.integers(3, size=6000)
        X = np.stack([rng.multivariate_normal(q.means[c], q.covariances[c]) for c in labels])
        X = X.astype(dtype)
        X[7, 3] = np.nan
        args = (q.weights, q.means, q.precisions_cholesky, "full")
        expanded = blocks.Model(*args, dtype, 1e-6).expanded
        assert (expanded.quadratic is None) == (name == "ill"), name
        out, default = {}, full._QUADRATIC_ROUNDING
        for fused, rounding in ((False, default), (True, default), (True, 0.0)):
            monkeypatch.setattr(kernels, "FUSED", fused)
            monkeypatch.setattr(full, "_QUADRATIC_ROUNDING", rounding)
            out[fused, rounding] = kernels.chunk_statistics(
                X if fused else X.astype(np.float64), *args, reg_covar=1e-6)[0]
        reference = out.pop((False, default))
        for key, got in out.items():
            np.testing.assert_allclose(got, reference, rtol=1e-9, atol=1e-9, err_msg=f"{name} {key}")


def test_fused_log_is_within_an_ulp_of_numpy():
    """The compiled log-sum-exp's ``log`` (branch-free, fdlibm's) against NumPy's on
    what it is given, a row's sum of exponentials in [1, K], and beyond."""
    from daskgmm.fused.logsumexp import logs

    rng = np.random.default_rng(0)
    x = np.concatenate([[1.0, 2.0, np.sqrt(2.0), 8.0, np.nextafter(1.0, 2.0)],
                        rng.uniform(1.0, 8.0, 200_000), 1.0 + rng.uniform(0, 1e-6, 10_000),
                        np.geomspace(1e-300, 1e300, 10_000)])
    out = np.empty_like(x)
    logs(x, len(x), out)
    want = np.log(x)
    assert out[0] == 0.0
    assert np.all(np.abs(out - want) <= np.spacing(np.abs(want)))


def test_fused_exp_is_within_an_ulp_of_numpy():
    """The compiled log-sum-exp's ``exp`` against NumPy's, over the whole range kept
    (down to ``log(1.5e-304)``; below, exactly 0)."""
    from daskgmm.fused.logsumexp import normalise

    x = np.concatenate([-np.geomspace(1e-12, 699.5, 20000), [0.0, -699.6, -700.0, -750.0]])
    wlp = np.stack([x, np.zeros_like(x)])  # second component: the row's maximum, 0
    n = len(x)
    lse = np.empty(n)
    normalise(wlp, n, np.empty(0), np.arange(n), lse, np.empty(n, bool), *np.empty((3, n)))
    e = np.exp(x)
    want = np.where(e >= 1.5e-304, e, 0.0) / (1.0 + np.where(e >= 1.5e-304, e, 0.0))
    np.testing.assert_allclose(wlp[0], want, rtol=5e-16, atol=0)
    assert np.all(wlp[0, -3:] == 0.0)
    np.testing.assert_allclose(lse, np.log(1.0 + np.where(e >= 1.5e-304, e, 0.0)), rtol=0,
                               atol=2.3e-16)
