"""The parity criterion on logits: exact on known softmax outputs, and it fails wrong outputs in every tier."""
import numpy as np
import pytest

from overhead import backends
from overhead.harness import parity


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def confident():
    """64 rows of logits with a clear winner (margins of several nats), as a trained digit model gives."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, (64, 10))
    logits[np.arange(64), rng.integers(0, 10, 64)] += 8.0
    return logits


@pytest.fixture
def near_uniform():
    """An untrained model: softmax outputs within 1e-3 of 0.1, margins ~1e-3 nat, no decisive input."""
    rng = np.random.default_rng(1)
    return rng.normal(0.0, 5e-3, (64, 10))


def test_centred_log_probabilities_are_the_centred_logits(confident):
    z = parity.centred_logits(_softmax(confident), floor=1e-30, as_prob=True)
    np.testing.assert_allclose(z, confident - confident.mean(-1, keepdims=True), atol=1e-9)


def test_identical_and_float32_rounded_outputs_pass(confident, near_uniform):
    for logits in (confident, near_uniform):
        p = _softmax(logits)
        same = parity.compare(p, p)
        assert same["logit_rel_err"] == 0.0 and same["problems"] == []
        rounded = parity.compare(p.astype(np.float32), p)  # what a float32 backend returns
        assert rounded["logit_rel_err"] < 1e-4 and rounded["problems"] == [], rounded


@pytest.mark.parametrize("tier", list(parity.TIERS))
def test_flipped_or_permuted_outputs_fail_in_every_tier(tier, confident, near_uniform):
    for logits in (confident, near_uniform):
        p = _softmax(logits)
        for wrong in (p[:, ::-1], p[::-1], np.roll(p, 3, axis=1), np.full_like(p, 0.1)):
            res = parity.compare(wrong, p, tier)
            assert res["problems"], (tier, res)
            assert res["logit_rel_err"] > 0.9  # flipped/permuted ~1.4, constant output exactly 1


def test_decisive_inputs_and_top1(confident, near_uniform):
    p = _softmax(confident)
    res = parity.compare(p, p)
    top2 = np.sort(confident, -1)[:, -2:]
    expected = int(np.sum(top2[:, 1] - top2[:, 0] >= parity.DECISIVE_MARGIN))
    assert expected >= 50 and res["n_decisive"] == expected and res["top1_decisive"] == 1.0
    assert parity.compare(_softmax(near_uniform), _softmax(near_uniform))["n_decisive"] == 0
    # swap the two best classes of a quarter of the rows, with logits otherwise intact: top-1 fails
    bad = confident.copy()
    rows = np.arange(16)
    order = np.argsort(bad[rows], axis=-1)
    first, second = order[:, -1], order[:, -2]
    bad[rows, first], bad[rows, second] = confident[rows, second], confident[rows, first]
    res = parity.compare(_softmax(bad), p, "int8")
    swapped_decisive = int(np.sum(top2[rows, 1] - top2[rows, 0] >= parity.DECISIVE_MARGIN))
    assert res["top1_decisive"] == pytest.approx(1 - swapped_decisive / expected)
    assert res["top1_decisive"] < 0.9
    assert any(f"< 0.9 on {expected} decisive" in m for m in res["problems"])


def test_int8_tier_accepts_quantisation_noise_but_float32_does_not(confident):
    """Logit noise of 5 % (what an int8 path gives) passes the int8 tier and fails float32."""
    rng = np.random.default_rng(2)
    noisy = confident + rng.normal(0, 0.05 * confident.std(), confident.shape)
    p, q = _softmax(confident), _softmax(noisy)
    loose, strict = parity.compare(q, p, "int8"), parity.compare(q, p, "float32")
    assert loose["problems"] == [] and 0.01 < loose["logit_rel_err"] < 0.35
    assert strict["problems"] and "logit_rel_err" in strict["problems"][0]


def test_int8_floor_ignores_differences_below_one_quantum(confident):
    """int8 softmax outputs are multiples of 1/256: classes below one step carry no information."""
    p = _softmax(confident)
    q = np.round(p * 256) / 256
    assert parity.compare(q, p, "int8")["problems"] == []


def test_logits_are_compared_as_they_are():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (32, 10))  # a linear head: not probabilities
    res = parity.compare(logits + 1e-6, logits)
    assert res["problems"] == [] and any("not probabilities" in n for n in res["notes"])
    assert parity.compare(-logits, logits)["problems"]


def test_tiers_of_the_registered_backends():
    assert parity.tier_of(backends.get("numpy")) == "float32"
    assert parity.tier_of(backends.get("litert.fp16")) == "fp16"
    assert parity.tier_of(backends.get("litert.int8")) == "int8"
    assert parity.tier_of(backends.get("litert.dynamic_int8")) == "int8"


def test_parity_of_a_runner_records_the_criterion(confident):
    p = _softmax(confident).astype(np.float32)
    x = np.zeros((64, 1), np.float32)
    ok = backends.parity(backends.Runner("numpy", lambda a: p[: len(a)], 64, 1, {}), p.astype(np.float64), x)
    assert ok["parity"] == "pass" and ok["logit_rel_err"] < 1e-6 and ok["criterion"].startswith("float32")
    flipped = backends.parity(backends.Runner("numpy", lambda a: p[: len(a), ::-1].copy(), 64, 1, {}),
                            p.astype(np.float64), x)
    assert flipped["parity"] == "fail" and "logit_rel_err" in flipped["reason"]


def test_decisive_prefix_holds_the_target_number_of_decisive_rows(confident, near_uniform):
    p = _softmax(confident)
    mask = parity.decisive_mask(p)
    assert mask.sum() == parity.compare(p, p)["n_decisive"]
    k = int(mask.sum()) // 2
    m = parity.decisive_prefix(p, k)
    assert parity.decisive_mask(p[:m]).sum() == k and mask[m - 1]  # ends on the k-th decisive row
    # fewer decisive rows than the target: every row is used (n_decisive then says how many)
    assert parity.decisive_prefix(_softmax(near_uniform), 5) == len(near_uniform)
    assert parity.decisive_prefix(p, len(p) + 1) == len(p)


def test_int8_floor_is_applied_when_counting_decisive_rows():
    # 400 classes: top 0.01, runner-up 0.003 (1.2 nats apart in float32); in int8 every probability below
    # 1/256 is floored to it, so the margin shrinks to log(0.01 * 256) = 0.94 nat: not decisive there
    ref = np.full((1, 400), (1 - 0.013) / 398)
    ref[0, :2] = [0.01, 0.003]
    assert parity.decisive_mask(ref, "float32")[0] and not parity.decisive_mask(ref, "int8")[0]
    assert parity.decisive_prefix(np.repeat(ref, 3, 0), 2, "int8") == 3
