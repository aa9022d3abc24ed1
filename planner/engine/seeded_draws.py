"""The seeded random inputs of one pass of the sampled distributions (SampleDraws), and the output
lengths it samples (stratified, short requests importance-sampled). They depend on the sample
counts and the length law only, not on the operating point: made once, shared read-only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.engine import lengths
from planner.engine.memo import Memo
from planner.engine.scenario import LengthDist
from planner.engine.workload import RNG_SEED, SAMPLES, even_picks

# A path's uniform u decides the arrival (u < e^-m: none) and, through its bits 13-20, the row's
# draw. Below about 2.4e-4 expected arrivals a cycle, the arriving u span too few steps of 2^-20 to
# reach every draw (the rare arrival's first prompt is then not stratified); such cycles almost
# never bring one, and moving the draw to lower bits reshuffles every path of every plan.
DRAW_BITS = 4096.0


@dataclass(frozen=True)
class SampleDraws:
    """The seeded random inputs of one distributions pass, in the order one seeded generator
    yields them. They depend only on the sample counts (not on the operating point), so
    they are drawn once per shape and every pass reads the same arrays (read-only)."""

    busy_strata: np.ndarray  # a permutation of the TTFT strata: arrival in a busy cycle when >= the idle share
    current_order: np.ndarray  # shuffles the in-progress cycle's quantiles
    residual_strata: np.ndarray  # the elapsed share of that cycle
    co_uniforms: np.ndarray  # Poisson draws of the prompts arriving alongside
    co_offsets: np.ndarray  # where those prompts start in the pool's stream
    own_picks: np.ndarray  # the request's own prompt, evenly over the pool
    output_order: np.ndarray  # shuffles the output-length samples
    walk_uniforms: np.ndarray  # one row per followed cycle (none when no cycle sees an arrival)
    beyond_normals: np.ndarray  # the stationary extension past the followed cycles
    drift_normals: np.ndarray  # the running batch's drift
    _picks: dict = field(default_factory=dict, compare=False, repr=False)

    def walk_picks(self, draws: int) -> np.ndarray:
        """The draw of a next-cycle row of `draws` that each walk uniform picks: its bits 13-20
        for 256 draws (draws per row are a power of two, so the draw is the low bits)."""
        made = self._picks.get(draws)
        if made is None:
            made = (self.walk_uniforms * (DRAW_BITS * draws)).astype(np.int64) & (draws - 1)
            made.flags.writeable = False
            made = self._picks.setdefault(draws, made)
        return made

    @staticmethod
    def make(n: int, m: int, pool_size: int, cycles: int, seed: int) -> SampleDraws:
        rng = np.random.default_rng(seed)
        strata = (np.arange(n) + 0.5) / n
        busy = rng.permutation(strata)
        current = rng.permutation(n)
        residual = rng.permutation(strata)
        co_uniforms = rng.random(n)
        co_offsets = rng.integers(0, pool_size, size=n)
        picks = even_picks(pool_size, n)[rng.permutation(n)]
        output_order = rng.permutation(m)
        walk = np.empty((cycles, m))
        for i in range(cycles):  # one call per cycle, as the walk drew them
            walk[i] = rng.random(m)
        made = SampleDraws(busy, current, residual, co_uniforms, co_offsets, picks, output_order, walk,
                           rng.standard_normal(m), rng.standard_normal(m))
        for array in vars(made).values():
            if isinstance(array, np.ndarray):
                array.flags.writeable = False
        return made


_SAMPLE_DRAWS: Memo[tuple[int, int, int, int, int], SampleDraws] = Memo()


def sample_draws(n: int, m: int, pool_size: int, cycles: int) -> SampleDraws:
    """The draws for n TTFT and m TPOT samples from a pool of `pool_size` prompts, following
    `cycles` cycles (0: no walk), made once per shape and seed."""
    key = (n, m, pool_size, cycles, RNG_SEED)
    return _SAMPLE_DRAWS.get_or_make(key, lambda: SampleDraws.make(*key))


SHORT_DECODE_STEPS = 32  # requests decoding in this few steps form the importance-sampled stratum
SHORT_SHARE = 0.5  # of the TPOT samples, given to that stratum when it holds less of the mass


def _output_samples(dist: LengthDist, m: int, tokens_per_step: float) -> tuple[np.ndarray, np.ndarray]:
    """m output lengths as stratified quantiles, with their probability weights. The requests that
    decode in at most SHORT_DECODE_STEPS steps get SHORT_SHARE of the samples (importance
    sampling): their TPOT averages over a few steps, one prefill-heavy cycle among them sets the
    TPOT tail, and with even weights a few dozen samples would decide the p99."""
    short_p = float(np.mean(lengths.grid(dist, SAMPLES) <= 1.0 + SHORT_DECODE_STEPS * tokens_per_step))
    if not 0.0 < short_p < SHORT_SHARE:
        return lengths.grid(dist, m), np.full(m, 1.0 / m)
    m_short = int(m * SHORT_SHARE)
    u = np.concatenate([short_p * (np.arange(m_short) + 0.5) / m_short,
                        short_p + (1.0 - short_p) * (np.arange(m - m_short) + 0.5) / (m - m_short)])
    w = np.concatenate([np.full(m_short, short_p / m_short), np.full(m - m_short, (1.0 - short_p) / (m - m_short))])
    return lengths.quantiles(dist, u), w


_OUTPUTS: Memo[tuple, tuple[np.ndarray, np.ndarray]] = Memo(256)  # many workloads seen: a sweep of lengths


def shuffled_outputs(dist: LengthDist, m: int, tokens_per_step: float, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_output_samples in the seeded order, kept by distribution (the same at every load)."""
    def make() -> tuple[np.ndarray, np.ndarray]:
        l_out, w_out = _output_samples(dist, m, tokens_per_step)
        made = (l_out[order], w_out[order])
        for array in made:
            array.flags.writeable = False
        return made

    return _OUTPUTS.get_or_make((*dist.model_dump().values(), m, tokens_per_step), make)
