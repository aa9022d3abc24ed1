"""The help screen's Markdown, assembled from the same tables the UI is built from (inputs,
result rows, commands), plus a factual note on where the numbers come from."""

from __future__ import annotations

from planner.tui.columns import ROWS
from planner.tui.commands import COMMANDS, FLEETS_COMMANDS, key_display
from planner.tui.fields import FIELDS, LOAD_MODE_HELP, PANES, TIER_HELP
from planner.tui.screens.fleets import COLUMN_HELP as FLEET_COLUMNS

INTRO = """\
# planner — help

planner sizes a serving fleet for three model tiers (small, medium, large) on one GPU type: for each
tier it finds the cheapest number of replicas and tensor-parallel degree that meets every latency
target at the peak load, and reports latency percentiles, cost, energy and what limited the plan.
Every valid change to an input recomputes the plan at once; while an input is invalid, the message
under it says what is allowed and the last valid plan stays on screen.
"""

FLEETS = """\
## Best fleets (F4)

The cheapest fleets for one tier over every GPU type in the catalog (plus the profile's `[[gpu]]`
entries), what `planner search` prints. The search tries every weight precision, KV precision,
tensor-parallel degree, max running sequences and token budget: a fast screen of the whole grid
(memory fit, the idle latency floors, a lower bound on cost) drops what cannot work, then the
cheapest survivors are sized exactly, as the plan sizes a fleet, until no unsized configuration can
be cheaper. It takes a few seconds per tier and runs in the background; results are kept, so
switching back to a tier or reopening the view is immediate.

Above the table: the model, how many configurations were screened and sized, and the tier's fleet
in the current plan. Under it: how many configurations were excluded and why (do not fit in
memory, cannot meet a target even idle, miss a target when sized), and the search's own warnings.
The chart plots monthly cost against p99 E2E latency: ◆ the cost-latency frontier (no other fleet
sized is both cheaper and faster), • the other ranked fleets, ● the highlighted row, ▲ the current
plan. Applying a fleet sets the shared fleet and engine settings, so the other two tiers are
re-planned with them (a large model may not fit the GPU chosen for a small one).
"""

SOURCES = """\
## Where the numbers come from

**Step time (roofline).** One engine step of a replica takes the larger of its matrix FLOPs divided
by the GPU's peak rate and its weight bytes divided by HBM bandwidth, plus KV-cache reads, prefill
attention, tensor-parallel all-reduces (ring all-reduce, 2(n−1)/n of the message per GPU, after
nccl-tests), pipeline hand-offs and fixed per-step, per-layer and per-sequence overheads. The method
follows J. Austin et al., *How to Scale Your Model* (the "scaling book", Google DeepMind 2025).
The peak rate and bandwidth are what micro-benchmarks measured on the GPU (maximum achievable
matmul, STREAM-like bandwidth), not the datasheet. Achieved efficiencies (fractions of those) and
overheads are calibration knobs with defaults from published simulators (BLIS, aiconfigurator,
DistServe fits), fitted per GPU family and per serving engine (vLLM, SGLang, TensorRT-LLM) to the
packaged measurements. The expected errors shown are cross-validated: each published source
predicted with knobs fitted without it.

**Memory.** Weights (at the chosen precision, with block scales for 4-bit formats), a runtime
reserve, NCCL buffers and activations come out of `gpu_mem_util` × GPU memory; the rest holds the KV
cache in 16-token blocks (vLLM PagedAttention). On TensorRT-LLM the KV cache takes `gpu_mem_util` of
the memory the loaded model leaves free (its `free_gpu_memory_fraction`). The KV cache caps the
running batch.

**Serving (queueing).** A vLLM-style continuous-batching scheduler with chunked prefill runs in
cycles: each cycle prefills the prompts that arrived during the previous one (spilling into more
steps past the token budget) alongside the running decodes. The cycle lengths form a Markov chain,
solved with the running batch (Little's law: batch = rate × decode tokens × step) as a fixed point.
TTFT = the rest of the cycle in progress + the cycle that prefills the prompt with those that
arrived alongside it; TPOT follows the cycles after a request's own prefill (each drawn from a table
of the next cycle by the arrivals the last one brings), then the slow drift of
the step duration (a linear-noise approximation of step and batch together: prefill-heavy steps
gather more arrivals, so near saturation the batch swings about twice as far as Poisson arrivals
alone); E2E = TTFT + (output − 1) × TPOT. Checked against a discrete-event simulation of the same
scheduler: p50/p90/p99 within 10% up to 70% of a replica's capacity. Percentiles come from seeded,
stratified samples (short requests, which set the TPOT tail, get half of them), so the same inputs
always give the same numbers.

**Engine defaults** follow the fleet's engine. vLLM V1 (`get_batch_defaults`): max_num_seqs 1024 and
a token budget of 8192 on GPUs with ≥ 70 GiB other than A100, else 256 and 2048. SGLang: 2048 running
requests and a chunked-prefill size of 2048, 8192 or 16384 by GPU memory. TensorRT-LLM: max_batch_size
2048, max_num_tokens 8192. All: gpu_memory_utilization 0.9; chunked prefill on. Speculative decoding
yields (1 − a^(k+1)) / (1 − a) tokens per step at acceptance a (Leviathan et al., 2023). Prefix-cache
hits skip prefill of whole cached blocks (vLLM automatic prefix caching).

**Sizing.** Per tier and TP degree: the fewest replicas whose per-replica load meets every target
at its percentile and stays under the utilisation ceiling; the cheapest TP degree wins. A degree
whose capacity alone (replicas at the utilisation ceiling) needs more GPUs than the winner is not
sized and shows as "≥ N GPUs". A target below the zero-load floor (one request on an idle replica)
makes the tier infeasible.

**Cost.** GPUs × $/GPU-hour (catalog on-demand price, or your override, less the discount) × 730
hours a month (8760 / 12). Energy: GPU power from 43% of TDP idle to 86% busy (fitted to ML.ENERGY
measurements) × PUE 1.58 (Uptime Institute 2023 survey average); CO₂ = energy × 0.436 kg/kWh (Ember
2023 world average). Both are cost knobs in the profile.

The model is an estimate, not a measurement: compare with a benchmark of your own stack before
buying hardware.
"""


def help_markdown() -> str:
    parts = [INTRO, "## Keys\n", "| Key | Command | What it does |", "|---|---|---|"]
    for c in COMMANDS:
        parts.append(f"| {key_display(c.key)} | {c.title} | {c.help} |")
    parts.append("| Tab / Shift+Tab | | Next / previous input |")
    parts.append("| Ctrl+P | | Command palette: every command above, and the theme picker |")
    parts.append("")
    parts.append("## Inputs\n")
    parts.append(f"### {PANES['models']}\n")
    for tier, text in TIER_HELP.items():
        parts.append(f"- **{tier.capitalize()}** — {text} Pick a catalog model, a `[[model]]` from the "
                     "profile, or *custom* to type a catalog id or a path to a Hugging Face `config.json`.")
    for pane in ("fleet", "load", "optimizations"):
        parts.append(f"\n### {PANES[pane]}\n")
        if pane == "load":
            parts.append(f"- **Size for** — {LOAD_MODE_HELP}")
        for spec in FIELDS:
            if spec.pane != pane:
                continue
            allowed = f" *Allowed: {spec.allowed()}.*" if spec.kind in ("float", "int") else ""
            name = ".".join(spec.path)
            parts.append(f"- **{spec.label}** (`{name}`) — {spec.help}{allowed}")
    parts.append("\n## Results\n")
    parts.append("One column per tier; the selected tier (Ctrl+T or click) is highlighted and shown in the "
                 "detail view and the latency chart. Missed targets are marked ✗.\n")
    for row in ROWS:
        parts.append(f"- **{row.label}** — {row.help}")
    parts.append("\n**Detail view** — memory per GPU (weights, KV cache, other, against the usable budget), "
                 "which resource bounds a decode step and why, what sized the fleet, and the cost of each "
                 "tensor-parallel option (≥ N GPUs: ruled out by its capacity alone, not sized), and the "
                 "hosted-API comparison (price, bill, which is cheaper, break-even load).\n")
    parts.append("**Latency vs load** — the selected tier's TTFT and TPOT at the target percentiles as the "
                 "offered load on its fleet rises from zero to saturation (log scale); horizontal lines are "
                 "the targets, the vertical line the planned peak rate.\n")
    parts.append("**Cost vs model size** — monthly cost of every catalog model at the current load, fleet and "
                 "targets (each planned in its own tier); ◆ marks the three chosen models.\n")
    parts.append("**Self-hosted vs API** — the selected tier's monthly cost against the mean load: self-hosted, "
                 "a step for each replica added (whole replicas are paid for, busy or idle), against the hosted "
                 "API's straight line (its price per request times the requests); the vertical line is the "
                 "planned load, ◆ the break-even load. The API price is the catalog's cheapest listing for the "
                 "model (planner/data/api_prices.toml) or the profile's own ([api] in the profile).\n")
    parts.append(FLEETS)
    parts.append("| Key | Command | What it does |\n|---|---|---|")
    for c in FLEETS_COMMANDS:
        parts.append(f"| {key_display(c.key)} | {c.title} | {c.help} |")
    parts.append("| ↑ / ↓, click | | Highlight a fleet (the chart marks it ●) |")
    parts.append("\nColumns of the table:\n")
    for name, text in FLEET_COLUMNS:
        parts.append(f"- **{name}** — {text}")
    parts.append("")
    parts.append(SOURCES)
    return "\n".join(parts)

