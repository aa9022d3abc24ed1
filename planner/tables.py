"""Rich tables for the CLI, built from the same dicts `--format json` prints."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from planner.engine.numbers import estimated_usd
from planner.report import fmt_gb, fmt_ms, fmt_num, fmt_sig, fmt_usd, mean_tokens, measured, unmeasured_text


def _dist_cells(d: dict, offline: bool = False) -> list[str]:
    # offline runs report means only: a missing percentile is "not reported", not an infinite wait
    return [("-" if offline and d.get(k) is None else fmt_ms(d.get(k))) for k in ("mean", "p50", "p90", "p99")]


def prediction_table(data: dict) -> Table:
    title = (f"{data['model']} on {data['gpu']}  TP={data['tp']} PP={data['pp']}  weights {data['weights']}  "
             f"KV {data['kv']}  ({data['mode']})")
    table = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    mem = data["memory_gb"]
    if not data["fits"] or "ttft_ms" not in data:
        table.add_row("result", Text(data.get("reason", "does not fit"), style="red"), "", "", "")
        return table
    if not data.get("stable", True):
        table.add_row("result", Text(data.get("reason", "unstable"), style="red"), "", "", "")
    else:
        offline = data["mode"] == "offline"
        table.add_row("TTFT", *_dist_cells(data["ttft_ms"], offline))
        table.add_row("TPOT", *_dist_cells(data["tpot_ms"], offline))
        table.add_row("E2E", *_dist_cells(data["e2e_ms"], offline))
        table.add_row("throughput", f"{fmt_num(data['output_tok_s'])} out tok/s", f"{fmt_num(data['total_tok_s'])} tok/s",
                      f"{fmt_num(data['requests_per_s'])} req/s", "")
        cap_by = {"kv cache": " (KV cache)", "max_num_seqs": " (max_num_seqs)"}.get(data.get("max_seqs_bound_by", ""), "")
        table.add_row("batch", f"{fmt_num(data['batch'])} running", f"cap {data['max_seqs']:,}{cap_by}",
                      f"util {data['utilization']:.0%}" if data["utilization"] is not None else "", "")
    table.add_row("memory/GPU", f"weights {fmt_gb(mem['weights'])}", f"KV {fmt_gb(mem['kv'])}", f"other {fmt_gb(mem['other'])}",
                  f"of {fmt_gb(mem['budget'])}")
    bound = data.get("bound", {})
    table.add_row("bound", f"prefill: {bound.get('prefill') or '-'}", f"decode: {bound.get('decode') or '-'}", "", "")
    caption = [data["note"]] if data.get("note") else []
    if data.get("first_use_ms"):
        caption.append(f"a run started cold: each request of its start-up burst waits {fmt_num(data['first_use_ms'])} ms "
                       "more for what the engine builds on first use")
    if data.get("error_pct"):
        caption.append(f"expected error: {expected_error(data)}")
    if caption:
        table.caption = Text("\n".join(caption), style="" if measured(data) else "yellow")
        table.caption_justify = "left"
    return table


def expected_error(t: dict) -> str:
    """The cross-validated median errors of a tier or prediction, and what has no measurements
    behind it."""
    return (", ".join(f"±{fmt_sig(v)}% {k}" for k, v in t.get("error_pct", {}).items())
            + (f" (not measured: {unmeasured_text(t, t['gpu'], t['model'])})" if not measured(t) else ""))


def band(t: dict, metric: str) -> str:
    """' ±x%': the cross-validated median error for this metric ('?' where a GPU family, model family
    or engine on it was not measured). End-to-end latency is TTFT plus the decode time, so it takes
    the larger of the two bands."""
    pct = t.get("error_pct") or {}
    keys = {"ttft_ms": ("ttft",), "tpot_ms": ("tpot",), "e2e_ms": ("ttft", "tpot"), "throughput": ("throughput",)}[metric]
    values = [pct[k] for k in keys if k in pct]
    if not values:
        return ""
    return f" ±{max(values):.0f}%" + ("" if measured(t) else "?")


def plan_table(data: dict, name: str) -> Table:
    load = data["load"]
    tokens_in = mean_tokens(load["input_len"], load["mean_input_tokens"])
    tokens_out = mean_tokens(load["output_len"], load["mean_output_tokens"])
    title = f"{name}: peak {fmt_sig(load['peak_rate_rps'])} req/s, {fmt_sig(tokens_in)} in / {fmt_sig(tokens_out)} out tokens"
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("")
    tiers = data["tiers"]
    for t in tiers:
        table.add_column(f"{t['tier']}: {t['model']}", justify="right")

    def row(label: str, fn) -> None:
        table.add_row(label, *[fn(t) for t in tiers])

    def ok(t) -> bool:
        return t["feasible"]

    row("GPUs", lambda t: f"{t['gpus']} x {t['gpu']}{band(t, 'throughput')}" if ok(t) else Text("infeasible", style="red"))
    row("replicas x TP",
        lambda t: f"{t['replicas']} x TP{t['tp']}" + (f" x PP{t['pp']}" if t["pp"] > 1 else "") if ok(t) else "-")
    row("weights / KV", lambda t: f"{t['weights']}{' (auto)' if t.get('weights_auto') else ''} / {t['kv']}" if ok(t) else "-")
    for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
        label = metric.split("_")[0].upper()
        row(f"{label} p50/p99", lambda t, m=metric: f"{fmt_ms(t[m]['p50'])} / {fmt_ms(t[m]['p99'])}{band(t, m)}"
            if ok(t) and t[m]["p99"] is not None else "-" if not ok(t) else "∞ / ∞")
    row("output tok/s", lambda t: fmt_num(t["output_tok_s"]))
    row("utilisation", lambda t: f"{t['utilization']:.0%}" if t["utilization"] is not None else "-")
    row("USD/month", lambda t: fmt_usd(t["usd_month"]))
    row("USD/M out tok", lambda t: fmt_usd(t["usd_per_mtok"]))
    api_rows(row)
    row("kWh/month", lambda t: fmt_num(t["kwh_month"]))
    row("CO2 kg/month", lambda t: fmt_num(t["co2_kg_month"]))
    row("quality", lambda t: f"{t['quality']['score']:.1f} {t['quality']['benchmark']}" if t.get("quality") else "-")
    row("expected error", expected_error)
    row("binding", lambda t: t["binding"] if ok(t) else Text(t.get("reason", ""), style="red"))
    row("meets SLO", lambda t: Text("yes", style="green") if t["meets_slo"] else Text(_no_because(t), style="red"))
    if any(t.get("note") for t in tiers):
        row("note", lambda t: Text(t.get("note", ""), style="yellow"))
    if load.get("caveats"):
        table.caption = Text("caveat: " + "; ".join(load["caveats"]), style="yellow")
        table.caption_justify = "left"
    sources = api_sources_text(tiers)
    if sources:
        table.caption = Text.assemble(table.caption or "", "\n" if table.caption else "", sources)
        table.caption_justify = "left"
    return table


def api_rows(row) -> None:
    """The hosted-API comparison rows of the plan table (see planner.report.api_json)."""
    row("API USD/month", lambda t: f"{fmt_usd(t['api_usd_month'])} {t['api_source']['provider']}"
        if t.get("api_usd_month") is not None else Text(t.get("api_note") or "-", style="dim"))
    row("API USD/M out tok", lambda t: fmt_usd(t.get("api_usd_per_mtok")))
    row("cheaper", lambda t: {"api": Text("API", style="yellow"), "self-hosted": Text("self-hosted", style="green"),
                              "same": "same"}.get(t.get("api_cheaper") or "", "-"))
    row("break-even", break_even_text)


def break_even_text(t: dict) -> str | Text:
    """The mean load from which self-hosting costs no more than the API, three ways."""
    rps = t.get("break_even_rps")
    if rps is None:
        if not t.get("api_cheaper"):
            return "-"
        price = t.get("break_even_usd_per_gpu_hour")
        return Text("never at this price" + (f" (pays at ≤${price:.2f}/GPU-h)" if price is not None else ""), style="yellow")
    return (f"{fmt_num(rps)} req/s = {fmt_num(t['break_even_requests_month'])} req/mo = "
            f"{fmt_num(t['break_even_mtok_month'])}M out tok/mo")


def api_sources_text(tiers: list[dict]) -> str:
    """Where each tier's API price comes from: provider, price page and the day it was read."""
    parts = []
    for t in tiers:
        src = t.get("api_source")
        if src is None:
            continue
        where = f"{src['url']}, seen {src['seen']}" if src.get("url") else "set in the profile"
        parts.append(f"{t['tier']}: {src['provider']} ${t['api_usd_per_mtok_input']:g}/${t['api_usd_per_mtok_output']:g} "
                     f"per M in/out tok ({where})")
    return ("API prices: " + "; ".join(parts)) if parts else ""


def _no_because(t: dict) -> str:
    """Why a tier misses its targets, in a word or the targets it misses (the binding row says more)."""
    if t.get("misses"):
        return "no: " + ", ".join(t["misses"])
    return "no: infeasible" if not t["feasible"] else "no"


def catalog_table(kind: str, rows: list[dict]) -> Table:
    table = Table(title=f"{kind}", header_style="bold")
    if kind == "gpus":
        for col in ("id", "memory GiB", "TB/s", "bf16 TFLOPS", "fp8", "fp4", "link GB/s", "TDP W", "USD/h"):
            table.add_column(col, justify="left" if col == "id" else "right", no_wrap=col == "id")
        for g in rows:
            t = g["tflops"]
            table.add_row(g["id"], fmt_sig(g["memory_gib"], 4), fmt_sig(g["mem_bw_tb_s"], 4),
                          fmt_sig(t.get("bf16", t.get("fp16", 0)), 4), fmt_sig(t["fp8"], 4) if "fp8" in t else "-",
                          fmt_sig(t["fp4"], 4) if "fp4" in t else "-", f"{fmt_sig(g['link_gb_s'], 4)} {g['interconnect']}",
                          fmt_sig(g["tdp_w"], 4), f"{g['price_usd_hour']:.2f}")
    else:
        for col in ("id", "tier", "params B", "active B", "layers", "attention", "experts", "context", "dtype"):
            table.add_column(col, justify="left" if col in ("id", "tier", "attention", "dtype") else "right", no_wrap=col == "id")
        for m in rows:
            table.add_row(m["id"], m["tier"], f"{m['params_total'] / 1e9:.1f}", f"{m['params_active'] / 1e9:.1f}",
                          str(m["layers"]), m["attention"], f"{m['experts']}/{m['experts_per_token']}" if m["experts"] else "-",
                          f"{m['max_context']:,}", m["dtype"])
    return table


def validation_tables(rows: list[dict], report: dict, unparsed: list[str], by_source: list[dict]) -> list:
    detail = Table(title="predicted vs measured", header_style="bold", title_justify="left")
    for col in ("model", "gpu", "tp", "mode", "in/out", "metric", "measured", "predicted", "error"):
        detail.add_column(col, justify="right" if col in ("measured", "predicted", "error", "tp") else "left")
    for r in rows:
        load = r["mode"] if r["mode"] == "offline" else f"{r['mode']} {r['rate'] or r['concurrency']}"
        if r["error_pct"] is not None:
            err = Text(f"{r['error_pct']:+.1f}%", style="green" if abs(r["error_pct"]) <= 15 else "red")
        else:
            err = Text(r.get("reason", ""), style="yellow")
        detail.add_row(r["model"], r["gpu"], str(r["tp"]), load, f"{fmt_sig(r['input_len'])}/{fmt_sig(r['output_len'])}",
                       r["metric"], fmt_sig(r["measured"], 4),
                       fmt_sig(r["predicted"], 4) if r["predicted"] is not None else "-", err)
    out = [detail, _error_summary(report, "absolute % error per metric")]
    if "finite_runs" in report:
        out.append(_error_summary(report["finite_runs"], "absolute % error per metric, runs of N prompts sent at once"))
    if by_source:
        out.extend(_source_tables(by_source))
    if unparsed:
        out.append(Text("rows not parsed:\n" + "\n".join(unparsed), style="yellow"))
    return out


# the metric groups of an error band (validate.METRIC_GROUPS), as the error tables' columns
ERROR_GROUPS = ("throughput", "tpot", "ttft", "e2e", "p99")


def _source_tables(sources: list[dict]) -> list:
    """Median absolute % error per source, worst first, with its bias (+: the planner reads high);
    the sources' URLs (or files) listed whole under the table, numbered as its rows."""
    table = Table(title="absolute % error per source, worst first (bias: median signed error)", header_style="bold",
                  title_justify="left")
    table.add_column("#", justify="right", no_wrap=True, min_width=len(str(len(sources))))
    for col in ("engine", "mode", "scored", "median", "bias", "throughput", "tpot", "ttft", "e2e", "p90/p99"):
        table.add_column(col, justify="left" if col in ("engine", "mode") else "right", no_wrap=True)

    def pct(value: float | None, signed: bool = False) -> str:
        return "-" if value is None else (f"{value:+.1f}%" if signed else f"{value:.1f}%")

    for i, s in enumerate(sources, 1):
        groups = [pct(s["groups"].get(g)) for g in ERROR_GROUPS]
        table.add_row(str(i), s["engine"], s["mode"], f"{s['scored']}/{s['rows']}", pct(s["median_ape"]),
                      pct(s["bias_pct"], signed=True), *groups)
    legend = Text("\n".join(f"{i:>3}  {s['source']}" for i, s in enumerate(sources, 1)), overflow="fold")
    return [table, legend]


def _error_summary(report: dict, title: str) -> Table:
    table = Table(title=title, header_style="bold", title_justify="left")
    for col in ("metric", "n", "median", "mean"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for metric, s in list(report["summary"].items()) + [("overall", report["overall"])]:
        table.add_row(metric, str(s["n"]), f"{s['median_ape']}%" if s["median_ape"] is not None else "-",
                      f"{s['mean_ape']}%" if s["mean_ape"] is not None else "-")
    return table


def cross_validation_tables(cv: dict) -> list:
    """Median absolute % error of held-out predictions, per metric group, by load band, engine, GPU
    family and model family."""
    out = []
    for key, title in (("leave_one_source_out", f"cross-validated: {cv['sources']} sources in {cv['folds']} folds, "
                        "each predicted with knobs fitted without it"),
                       ("gpu_family_held_out", "each GPU family predicted as if unmeasured"),
                       ("model_family_held_out", "each model family predicted with knobs fitted without its rows")):
        table = Table(title=title, header_style="bold", title_justify="left")
        table.add_column("rows")
        for g in ERROR_GROUPS:
            table.add_column(g if g != "p99" else "p90/p99", justify="right")
        for name, row in cv.get(key, {}).items():
            cells = [f"{row[g]}% ({row[g + '_n']})" if row.get(g) is not None else "-" for g in ERROR_GROUPS]
            table.add_row(name, *cells)
        out.append(table)
    return out


def search_tables(data: list[dict]) -> list:
    out = []
    for tier in data:
        table = Table(title=f"{tier['tier']}: {tier['screened']:,} configurations screened in {tier['screen_ms']} ms, "
                      f"{tier['exact_sizings']} sized exactly", title_justify="left", header_style="bold")
        for col in ("#", "model", "GPUs", "TP", "weights/KV", "max seqs", "budget", "USD/month", "TTFT p99", "E2E p99",
                    "binding"):
            table.add_column(col, justify="right" if col in ("#", "GPUs", "TP", "USD/month", "TTFT p99", "E2E p99") else "left")
        for api in tier.get("hosted_api", []):  # cheaper than every fleet: above them, marked
            table.add_row(Text("API", style="yellow"), api["model"], Text(f"hosted API: {api['provider']}", style="yellow"),
                          "-", "-", "-", "-", fmt_usd(api["usd_month"]), "-", "-", "a price, not sized")
        def fleet(c: dict) -> tuple:
            return c["model"], c["gpu"], c["tp"], c["weights"], c["kv"], c["max_seqs"], c["max_batched_tokens"]

        frontier = {fleet(c) for c in tier["frontier_e2e_p99"]}
        for i, c in enumerate(tier["top"], 1):
            mark = "*" if fleet(c) in frontier else ""
            table.add_row(f"{i}{mark}", c["model"], f"{c['gpus']} x {c['gpu']}" + ("" if c["validated"] else " ?"), str(c["tp"]),
                          f"{c['weights']}/{c['kv']}", str(c["max_seqs"]), str(c["max_batched_tokens"]),
                          estimated_usd(c["usd_month"], c.get("price_estimated")), fmt_ms(c["ttft_p99_ms"]),
                          fmt_ms(c["e2e_p99_ms"]), c["binding"])
        excluded = ", ".join(f"{n:,} {why}" for why, n in tier["excluded"].items())
        unmeasured = "; ? no measurements of this GPU family, model family or engine on it" if not all(
            c["validated"] for c in tier["top"]) else ""
        estimated = "; ~ the GPU's price is an estimate (no quoted on-demand price)" if any(
            c.get("price_estimated") for c in tier["top"]) else ""
        hosted = ("; API: a hosted API's bill for this traffic, below every fleet found (its latency is not modelled)"
                  if tier.get("hosted_api") else "")
        notes = "; " + "; ".join(tier["notes"]) if tier["notes"] else ""
        table.caption = ((f"excluded: {excluded}. " if excluded else "") + "* on the cost / p99 E2E frontier" + unmeasured
                         + estimated + hosted + notes)
        out.append(table if tier["top"] else _no_fleet(table.title, tier, excluded))
    return out


def _no_fleet(title: str, tier: dict, excluded: str) -> Text:
    """A search that ranks nothing: the title and why, not an empty table (nothing screened: no load)."""
    lines = [title] + (["no fleet meets the targets"] if tier["screened"] else [])
    lines += ([f"excluded: {excluded}"] if excluded else []) + list(tier["notes"])
    return Text("\n".join(lines), style="yellow")
