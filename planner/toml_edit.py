"""Change the values of a TOML file's text and keep everything else as its author wrote it.

Saving a profile must not turn a hand-written, commented file into a dump of every default:
only the keys whose value changed are written, in place, keeping their comment (at the same column
when it fits), the key order, the layout, and the keys the author left out. A key the file lacks
takes the place of its commented-out example (`# max_gpus = 64  # why`) when the table shows one,
else follows the table's last key; a key unset is commented out, so its note is not lost. tomlkit
parses TOML into a document that remembers comments and whitespace and writes back
byte-identical text.
"""

from __future__ import annotations

import re
from typing import Any

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, Float, InlineTable, Integer, Item, Null, Table, Trivia

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
    edited = doc.as_string()
    if "\r\n" in text:  # the lines added end as the author's do (tomlkit writes "\n")
        edited = edited.replace("\r\n", "\n").replace("\n", "\r\n")
    return edited


def _merge(table: Tableish, before: dict, after: dict, top: bool) -> None:
    _unset_all(table, before, after)
    for key, value in after.items():
        old = before.get(key)
        if key in before and old == value:
            continue
        current = table.get(key) if key in table else None
        if isinstance(value, dict) and isinstance(current, TABLES):
            inner = old if isinstance(old, dict) else {}
            _unset_all(current, inner, value)
            # fetched again: the proxy of dotted keys spread over the file goes stale when one goes
            _merge(table[key], inner, value, top=False)
        elif isinstance(value, dict) and top and current is None:
            section = tomlkit.table()
            _merge(section, old if isinstance(old, dict) else {}, value, top=False)
            if len(section):
                table[key] = section
        elif current is None:
            _add(table, key, value)
        else:
            table[key] = _new_item(value, current)


def _unset_all(table: Tableish, before: dict, after: dict) -> None:
    for key in [k for k in before if k not in after and k in table]:
        _unset(table, key)


def _container(table: Tableish) -> Container | None:
    """The body of a [table] or of the document, where lines can be placed (tomlkit's own
    Container._insert_at); None for inline tables and dotted keys spread over the file."""
    body = table.value if isinstance(table, Table) else table if isinstance(table, Container) else None
    return body if hasattr(body, "_insert_at") else None


def _unset(table: Tableish, key: str) -> None:
    """Remove a key; a one-line `key = value  # why` stays, commented out, as an example."""
    body, item = _container(table), table.get(key)
    at = [i for i, (name, _) in enumerate(body.body) if name is not None and name.key == key] if body else []
    del table[key]
    one_line = isinstance(item, Item) and not isinstance(item, (Table, AoT, InlineTable)) and "\n" not in item.as_string()
    if len(at) == 1 and one_line and not getattr(table, "is_super_table", lambda: False)():
        ws = " " * max(1, len(item.trivia.comment_ws) - 2)  # the comment keeps its column after the "# "
        comment = f"# {key} = {item.as_string()}{ws}{item.trivia.comment}".rstrip()
        body.body[at[0]] = (None, Comment(Trivia(indent=item.trivia.indent, comment=comment)))


def _add(table: Tableish, key: str, value: Any) -> None:
    """A key the table lacks. Appending would put it after the comments that introduce the next
    table; it goes in place of its commented-out example, else after the table's last key.
    (Container._insert_at is tomlkit's own positional insert; tables it cannot reach append.)"""
    body = _container(table)
    if body is None:
        table[key] = _new_item(value, None)
        return
    for i, (name, item) in enumerate(body.body):
        example = _example(item, key) if name is None and isinstance(item, Comment) else None
        if example is not None:
            new = _new_item(value, example)
            if example.trivia.comment:  # the comment column stays where the example had it: add the "# "
                new.trivia.comment_ws += " " * (len(item.trivia.comment) - len(item.trivia.comment[1:].lstrip()))
            body._insert_at(i, key, new)
            body.body[i + 1] = (None, Null())  # the example line, now written out
            return
    last = max((i for i, (name, item) in enumerate(body.body)
                if name is not None and not isinstance(item, (Table, AoT))), default=None)
    if isinstance(table, Table) and last is not None and last + 1 < len(body.body):
        body._insert_at(last + 1, key, _new_item(value, None))
    else:
        table[key] = _new_item(value, None)


def _example(comment: Comment, key: str) -> Item | None:
    """The item of a commented-out `# key = value  # why` line, or None."""
    text = comment.trivia.comment
    if not re.match(rf"#\s*{re.escape(key)}\s*=", text):
        return None
    try:
        line = tomlkit.parse(text[1:].lstrip())
    except TOMLKitError:
        return None
    item = line.get(key) if len(line) == 1 else None
    return item if isinstance(item, Item) else None


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
        item.trivia.comment = current.trivia.comment
    return item


def _as_written_integer(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _table_of(data: dict) -> Table:
    table = tomlkit.table()
    table.update(data)
    return table
