"""Change the values of a TOML file's text and keep everything else as its author wrote it.

Saving a profile must not turn a hand-written, commented file into a dump of every default:
only the keys whose value changed are written, in place, keeping their comment (at the same column
when it fits), the key order, the layout, and the keys the author left out. tomlkit parses TOML
into a document that remembers comments and whitespace and writes back byte-identical text.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.items import AoT, Float, InlineTable, Integer, Item, Table

# A table as tomlkit hands it out; the proxy is a table whose keys are spread over the file
# (dotted keys `load.rate_rps = 5` beside a later `load.input_len = 1000`).
Tableish = Container | Table | InlineTable | OutOfOrderTableProxy
TABLES = (Table, InlineTable, OutOfOrderTableProxy)


def edit_toml(text: str, before: dict, after: dict) -> str:
    """`text`, whose data is `before`, changed so that its data becomes `after`: keys only in
    `before` are removed, keys whose value differs are set (added at the end of their table when
    new), and every other byte stays. Top-level tables are written as [sections], deeper ones inline."""
    doc = tomlkit.parse(text)
    _merge(doc, before, after, top=True)
    return doc.as_string()


def _merge(table: Tableish, before: dict, after: dict, top: bool) -> None:
    for key in [k for k in before if k not in after and k in table]:
        del table[key]
    for key, value in after.items():
        old = before.get(key)
        if key in before and old == value:
            continue
        current = table.get(key) if key in table else None
        if isinstance(value, dict) and isinstance(current, TABLES):
            _merge(current, old if isinstance(old, dict) else {}, value, top=False)
        elif isinstance(value, dict) and top and current is None:
            section = tomlkit.table()
            _merge(section, old if isinstance(old, dict) else {}, value, top=False)
            if len(section):
                table[key] = section
        else:
            table[key] = _new_item(value, current)


def _new_item(value: Any, current: Item | None) -> Item:
    """value as a TOML item, written the way the value it replaces was: an integral float stays
    an integer where the author wrote one, a one-number table stays a number, and the comment
    keeps its column."""
    if isinstance(current, Integer):
        value = _as_written_integer(value)
    if isinstance(current, (Integer, Float)) and isinstance(value, dict):
        # `input_len = 1000` is a fixed length; a changed fixed length is written the same way
        if set(value) == {"kind", "mean"} and value["kind"] == "fixed":
            value = _as_written_integer(value["mean"]) if isinstance(current, Integer) else value["mean"]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return AoT([_table_of(v) for v in value])
    item = tomlkit.inline_table() if isinstance(value, dict) else tomlkit.item(value)
    if isinstance(value, dict):
        item.update(value)
    if isinstance(current, Item) and not isinstance(current, (Table, AoT)) and current.trivia.comment:
        grown = len(item.as_string()) - len(current.as_string())
        item.trivia.comment_ws = " " * max(1, len(current.trivia.comment_ws) - grown)
    return item


def _as_written_integer(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _table_of(data: dict) -> Table:
    table = tomlkit.table()
    table.update(data)
    return table
