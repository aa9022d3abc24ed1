"""The four input panes. Each is a bordered, focusable group of labelled inputs built from the
FieldSpecs in fields.py. A pane validates its own inputs (the message under an input says what
is allowed) and posts `InputPane.Edited` up with the parsed value; the screen owns the profile.
Values come down through `InputPane.show(profile)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select
from textual.widgets.select import InvalidSelectValueError

from planner.engine import catalog
from planner.engine.engines import ENGINE_NAMES, ENGINES
from planner.engine.specs import KV_PRECISIONS, TIERS, TP_DEGREES, WEIGHT_PRECISIONS
from planner.profile import Profile
from planner.tui.fields import BY_ID, BY_PATH, LOAD_MODE_HELP, PANES, TIER_HELP, FieldSpec, get_value
from planner.tui.textual_private import DeferredListSelect, SteadyBoxInput
from planner.tui.widgets.inputs import FieldValidator, OrderedInput
from planner.tui.widgets.preset import preset

CUSTOM = "__custom__"


class Picker(DeferredListSelect):
    """A compact Select whose drop-down list survives page keys before its first frame.

    The list (an OptionList of every option, hidden until opened) is mounted once the first frame
    is out: the dozen lists were ~12% of the work before it. Opening a picker before then opens it
    as soon as its list is mounted."""

    def __init__(self, *args: Any, compact: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        preset(self, Select.compact, compact, "-textual-compact")


class FieldInput(OrderedInput, SteadyBoxInput):
    """An Input whose box comes from the CSS, never from its text (SteadyBoxInput): each keystroke
    repaints the input alone, not the whole screen (~200 widgets)."""

    def __init__(self, *args: Any, compact: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        preset(self, Input.compact, compact, "-textual-compact")


def input_for(spec: FieldSpec, value: str = "", **kw: Any) -> Input:
    widget = FieldInput(
        id=spec.id, validators=[FieldValidator(spec)], validate_on=["changed", "submitted"],
        placeholder=spec.placeholder or spec.blank, tooltip=f"{spec.help}\n\nAllowed: {spec.allowed()}",
        select_on_focus=True, **kw,
    )
    # The initial value is valid and needs no watchers: Input's value watcher clears the screen's
    # text selection, which costs milliseconds per input while the screen is being built.
    widget.set_reactive(Input.value, value)
    return widget


class InputPane(Vertical, can_focus=False):
    """A titled group of inputs (focus-within highlights its border)."""

    PANE: ClassVar[str] = ""

    @dataclass
    class Edited(Message):
        """A pane input changed. `value` is parsed when `error` is empty."""

        pane: InputPane
        path: tuple[str, ...]
        value: Any
        error: str = ""
        input_id: str = ""

        @property
        def control(self) -> InputPane:
            return self.pane

    def __init__(self, profile: Profile, **kw: Any) -> None:
        super().__init__(id=f"pane-{self.PANE}", classes="pane", **kw)
        self.border_title = PANES[self.PANE]
        self.profile = profile  # the initial values and options; later profiles come through show()
        self._data = profile.model_dump()
        self._flagged: set[str] = set()  # inputs set_error has given a message since they were last cleared

    # ---- building blocks

    def row(self, label: str, *widgets: Widget, help: str = "", classes: str = "") -> Horizontal:
        lab = Label(label, classes="label")
        if help:
            lab.tooltip = help
        return Horizontal(lab, *widgets, classes=f"row {classes}".strip())

    def initial(self, spec: FieldSpec) -> str:
        return spec.format(get_value(self._data, spec.path))

    def field_row(self, path: tuple[str, ...], classes: str = "") -> ComposeResult:
        spec = BY_PATH[path]
        yield self.row(spec.label, input_for(spec, value=self.initial(spec)), Label(spec.unit, classes="unit"),
                       help=spec.help, classes=classes)

    def select_row(self, path: tuple[str, ...], options: list[tuple[str, Any]], classes: str = "") -> ComposeResult:
        spec = BY_PATH[path]
        current = get_value(self.profile.model_dump(), path)
        select = Picker(options, id=spec.id, allow_blank=False, tooltip=spec.help,
                        value=current if current in [v for _, v in options] else options[0][1])
        yield self.row(spec.label, select, help=spec.help, classes=classes)

    def toggle_row(self, path: tuple[str, ...]) -> ComposeResult:
        yield from self.select_row(path, [("on", True), ("off", False)])

    # ---- values down

    def on_mount(self) -> None:
        self.decorate(self.profile)

    def decorate(self, profile: Profile) -> None:
        """UI state that follows the values (placeholders, hidden rows); cheap, called after edits."""

    def show(self, profile: Profile) -> None:
        """Set every input from the profile without posting edits, and clear messages."""
        data = profile.model_dump()
        for widget in self.query("Input, Select"):
            spec = self._spec_of(widget)
            if spec is None:
                continue
            self.set_widget(widget, spec.format(get_value(data, spec.path)) if isinstance(widget, Input)
                            else get_value(data, spec.path))
            self.set_error(widget.id or "", "")
        self.profile = profile
        self.decorate(profile)

    def set_widget(self, widget: Widget, value: Any) -> None:
        with widget.prevent(Input.Changed, Select.Changed):
            try:
                widget.value = value  # type: ignore[attr-defined]
            except InvalidSelectValueError:
                pass  # not among the options (e.g. a custom entry missing); keep the current one

    def set_error(self, widget_id: str, message: str) -> None:
        """Show (or clear) the message under an input's row; the screen calls this for cross-field
        errors. The message label is mounted the first time it is needed. Clearing an input that
        has no message costs nothing (every keystroke clears its input: no query of the pane)."""
        if not message and widget_id not in self._flagged:
            return
        if message:
            self._flagged.add(widget_id)
        else:
            self._flagged.discard(widget_id)
        labels = self.query(f"#{widget_id}-error")
        if labels:
            label = labels.first(Label)
            label.update(message)
            label.set_class(bool(message), "-shown")
        elif message:
            widgets = self.query(f"#{widget_id}")
            row = widgets.first().parent if widgets else None
            if row is not None:
                self.mount(Label(message, id=f"{widget_id}-error", classes="input-error -shown"), after=row)
        for widget in self.query(f"#{widget_id}"):
            widget.set_class(bool(message), "-invalid")

    def revert(self, widget_id: str, profile: Profile) -> bool:
        """Put a picker whose choice the profile refused back to the profile's value (True), or
        leave a text input as typed (False: the user corrects the text)."""
        widgets = self.query(f"#{widget_id}")
        spec = BY_ID.get(widget_id)
        if not widgets or not isinstance(widgets.first(), Select) or spec is None:
            return False
        self.set_widget(widgets.first(), get_value(profile.model_dump(), spec.path))
        self.decorate(profile)
        return True

    def _spec_of(self, widget: Widget) -> FieldSpec | None:
        return BY_ID.get(widget.id or "")

    # ---- edits up

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        spec = self._spec_of(event.input)
        if spec is None:
            return
        event.stop()
        result = event.validation_result
        if result is not None and not result.is_valid:
            message = "; ".join(result.failure_descriptions)
            self.set_error(event.input.id or "", message)
            self.post_message(self.Edited(self, spec.path, None, message, event.input.id or ""))
            return
        self.set_error(event.input.id or "", "")
        self.post_message(self.Edited(self, spec.path, spec.parse(event.value), "", event.input.id or ""))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        spec = self._spec_of(event.select)
        # Select.BLANK is False: an on/off picker's "off" is a choice, not the blank
        if spec is None or (event.value is Select.BLANK and spec.kind != "bool"):
            return
        event.stop()
        self.post_message(self.Edited(self, spec.path, event.value, "", event.select.id or ""))


# ---------------------------------------------------------------------------------------------


def canonical_model(name: str, profile: Profile) -> str:
    """The picker value for a tier's model: a catalog or [[model]] id for ids and aliases, else
    the text itself (a config.json path, shown as a custom option)."""
    key = catalog.normalize(name)
    for entry in profile.model:
        if catalog.normalize(entry.id) == key:
            return entry.id
    for model in catalog.models().values():
        if key in (catalog.normalize(n) for n in (model.id, *model.aliases)):
            return model.id
    return name


def model_options(profile: Profile, current: str) -> list[tuple[str, str]]:
    """Catalog models by size, then the profile's custom ones, then the current value if it is
    neither (a config.json path), then "custom…" to type an id or path."""
    options = [(f"{m.id}  {m.params_total / 1e9:,.1f}B", m.id)
               for m in sorted(catalog.models().values(), key=lambda m: m.params_total)]
    known = {v for _, v in options}
    for entry in profile.model:
        if entry.id not in known:
            options.append((f"{entry.id}  (custom)", entry.id))
            known.add(entry.id)
    if current and canonical_model(current, profile) not in known:
        options.append((f"{current}  (custom)", current))
    options.append(("custom: id or config.json path…", CUSTOM))
    return options


class ModelsPane(InputPane):
    """One model per tier: pick from the catalog or the profile's [[model]] tables, or type a
    catalog id or a path to a Hugging Face config.json."""

    PANE = "models"
    HELP = "Pick the model served by each tier (small, medium, large)."

    def compose(self) -> ComposeResult:
        for tier in TIERS:
            current = getattr(self.profile.models, tier)
            select = Picker(model_options(self.profile, current), id=f"models-{tier}", allow_blank=False,
                            tooltip=TIER_HELP[tier], value=canonical_model(current, self.profile))
            yield self.row(tier.capitalize(), select, help=TIER_HELP[tier])
            custom = FieldInput(id=f"models-{tier}-custom", placeholder="catalog id or path/to/config.json",
                                tooltip="A catalog id or alias, or a Hugging Face config.json (relative to the profile)")
            yield self.row("  custom", custom, classes="custom-row -hidden", help=TIER_HELP[tier])

    def show(self, profile: Profile) -> None:
        for tier in TIERS:
            current = getattr(profile.models, tier)
            select = self.query_one(f"#models-{tier}", Select)
            with select.prevent(Select.Changed):
                select.set_options(model_options(profile, current))
                canonical = canonical_model(current, profile)
                select.value = canonical
            self._show_custom(tier, False)
            self.set_error(f"models-{tier}", "")


    def _show_custom(self, tier: str, visible: bool) -> None:
        row = self.query_one(f"#models-{tier}-custom").parent
        assert row is not None
        row.set_class(not visible, "-hidden")

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        tier = (event.select.id or "").removeprefix("models-")
        if tier not in TIERS or event.value is Select.BLANK:
            return
        if event.value == CUSTOM:
            self._show_custom(tier, True)
            self.query_one(f"#models-{tier}-custom", Input).focus()
            return
        self._show_custom(tier, False)
        self.set_error(f"models-{tier}", "")
        self.post_message(self.Edited(self, ("models", tier), event.value, "", event.select.id or ""))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()

    @on(Input.Submitted)
    def _custom_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        tier = (event.input.id or "").removeprefix("models-").removesuffix("-custom")
        name = event.value.strip()
        if not name:
            self.set_error(f"models-{tier}", "type a catalog id or a path to a config.json, then Enter")
            return
        self.set_error(f"models-{tier}", "")
        self.post_message(self.Edited(self, ("models", tier), name, "", f"models-{tier}"))


def gpu_options(profile: Profile) -> list[tuple[str, str]]:
    gpus = {g.id: g for g in catalog.gpus().values()}
    for g in profile.gpu:
        gpus[g.id] = g
    return [(f"{g.id}  {g.memory_gib:g} GB  ${g.price_usd_hour:.2f}/h", g.id) for g in gpus.values()]


class FleetPane(InputPane):
    PANE = "fleet"
    HELP = "The GPU type for all tiers, its price, how many GPUs one replica may span and how many a tier may use."

    def compose(self) -> ComposeResult:
        yield from self.select_row(("fleet", "gpu"), gpu_options(self.profile))
        yield from self.select_row(("fleet", "engine"), [(ENGINE_NAMES[e], e) for e in ENGINES])
        yield from self.field_row(("fleet", "price_usd_hour"))
        yield from self.field_row(("fleet", "discount"))
        yield from self.field_row(("fleet", "gpus_per_node"))
        yield from self.field_row(("fleet", "max_gpus"))

    def show(self, profile: Profile) -> None:
        select = self.query_one("#fleet-gpu", Select)
        with select.prevent(Select.Changed):
            select.set_options(gpu_options(profile))
        gpu = self._gpu(profile)
        super().show(profile.model_copy(update={"fleet": profile.fleet.model_copy(
            update={"gpu": gpu.id if gpu else profile.fleet.gpu})}))

    @staticmethod
    def _gpu(profile: Profile):
        try:
            return catalog.get_gpu(profile.fleet.gpu, profile.gpu)
        except catalog.CatalogError:
            return None

    def decorate(self, profile: Profile) -> None:
        """Placeholders say what a blank price or node size means for this GPU."""
        gpu = self._gpu(profile)
        price = self.query_one("#fleet-price-usd-hour", Input)
        price.placeholder = f"{gpu.price_usd_hour:.2f} (catalog)" if gpu else "catalog price"
        node = self.query_one("#fleet-gpus-per-node", Input)
        node.placeholder = f"{gpu.max_gpus_per_node} (node size)" if gpu else "node size"


LOAD_MODES = [("peak rate (req/s)", "rate"), ("daily volume × peak", "daily")]


class LoadPane(InputPane):
    PANE = "load"
    HELP = "Offered traffic, token lengths and latency targets (SLOs)."

    def compose(self) -> ComposeResult:
        mode = "daily" if self.profile.load.requests_per_day is not None else "rate"
        select = Picker(LOAD_MODES, id="load-mode", allow_blank=False, tooltip=LOAD_MODE_HELP,
                        value=mode)
        yield self.row("Size for", select, help=LOAD_MODE_HELP)
        yield from self.field_row(("load", "rate_rps"), classes="rate-only")
        yield from self.field_row(("load", "requests_per_day"), classes="daily-only")
        yield from self.field_row(("load", "peak_factor"), classes="daily-only")
        for which in ("input_len", "output_len"):
            yield from self.field_row(("load", which, "mean"))
            kind = BY_PATH[("load", which, "kind")]
            p90 = BY_PATH[("load", which, "p90")]
            yield self.row(
                kind.label,
                Picker([(k, k) for k in kind.choices], id=kind.id, allow_blank=False, tooltip=kind.help,
                       value=getattr(self.profile.load, which).kind),
                Label(p90.label, classes="inline-label"),
                # disabled from the start as decorate() would set it: changing it once mounted restyles
                input_for(p90, classes="short", value=self.initial(p90),
                          disabled=getattr(self.profile.load, which).kind != "lognormal"),
                help=kind.help,
            )
        for target in ("ttft", "tpot", "e2e"):
            ms = BY_PATH[("slo", f"{target}_ms")]
            pct = BY_PATH[("slo", f"{target}_percentile")]
            yield self.row(ms.label, input_for(ms, value=self.initial(ms)), Label("ms", classes="unit-short"),
                           Label(pct.label, classes="inline-label"),
                           input_for(pct, classes="short", value=self.initial(pct)), help=ms.help)
        yield from self.field_row(("slo", "max_utilization"))

    def show(self, profile: Profile) -> None:
        super().show(profile)
        mode = "daily" if profile.load.requests_per_day is not None else "rate"
        self.set_widget(self.query_one("#load-mode", Select), mode)

    def decorate(self, profile: Profile) -> None:
        """Rate or daily-volume rows, and the p90 input only for lognormal lengths."""
        self.set_mode("daily" if profile.load.requests_per_day is not None else "rate")
        for which in ("input_len", "output_len"):
            self.set_lognormal(which, getattr(profile.load, which).kind == "lognormal")

    def set_mode(self, mode: str) -> None:
        self.set_class(mode == "daily", "-daily")

    def set_lognormal(self, which: str, on: bool) -> None:
        p90 = self.query_one(f"#{BY_PATH[('load', which, 'p90')].id}", Input)
        p90.disabled = not on

    def revert(self, widget_id: str, profile: Profile) -> bool:
        if widget_id != "load-mode":
            return super().revert(widget_id, profile)
        self.set_widget(self.query_one("#load-mode", Select), "daily" if profile.load.requests_per_day is not None
                        else "rate")
        self.decorate(profile)
        return True

    @on(Select.Changed, "#load-mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.set_mode(str(event.value))
        self.post_message(self.Edited(self, ("load", "mode"), event.value, "", "load-mode"))

    @on(Select.Changed, "#load-input-len-kind, #load-output-len-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        which = "input_len" if "input" in (event.select.id or "") else "output_len"
        self.set_lognormal(which, event.value == "lognormal")


class OptimizationsPane(InputPane):
    PANE = "optimizations"
    HELP = "Serving-engine settings: precision, parallelism, batching and the speed-ups."

    def compose(self) -> ComposeResult:
        yield from self.select_row(("optimizations", "weights"), [(p, p) for p in ("auto", *WEIGHT_PRECISIONS)])
        yield from self.select_row(("optimizations", "kv"), [(p, p) for p in ("auto", *KV_PRECISIONS)])
        yield from self.select_row(("optimizations", "tp"), [("auto", "auto"), *((str(d), d) for d in TP_DEGREES)])
        yield from self.field_row(("optimizations", "max_num_seqs"))
        yield from self.toggle_row(("optimizations", "chunked_prefill"))
        yield from self.field_row(("optimizations", "prefix_hit"))
        yield from self.field_row(("optimizations", "spec_k"))
        yield from self.field_row(("optimizations", "spec_accept"))
        yield from self.field_row(("optimizations", "prune_fraction"))
        yield from self.toggle_row(("optimizations", "sparsity_2_4"))


PANE_CLASSES: tuple[type[InputPane], ...] = (ModelsPane, FleetPane, LoadPane, OptimizationsPane)
