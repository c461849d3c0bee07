"""Writes ``records.py``: a typed face (TypedDict) for every Avro record and stored row, from the
``.avsc`` files, so that code building or reading a record says which one it means and a type
checker holds it to the schema. The records stay plain dicts at run time (the codec encodes and
decodes dicts), so typing them costs apply() nothing.

Run ``python -m reprise.schemas.typegen`` after changing a schema; a unit test fails while
``records.py`` differs from what this would write.
"""

from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path
from typing import Any

from reprise.schemas.codec import _ALL, CURRENT

_DIR = Path(__file__).parent
_PRIMITIVES = {"string": "str", "bytes": "bytes", "int": "int", "long": "int", "boolean": "bool",
               "float": "float", "double": "float", "null": "None"}


class _Writer:
    def __init__(self) -> None:
        self.classes: dict[str, str] = {}  # class name -> its source, in dependency order
        self.aliases: dict[str, str] = {}  # within the file being read: a record's name -> its class
        self.top = ""  # the file's own record

    def type_of(self, t: Any, owner: str) -> str:
        if isinstance(t, str):
            return _PRIMITIVES.get(t) or self.aliases.get(t.rsplit(".", 1)[-1], t.rsplit(".", 1)[-1])
        if isinstance(t, list):
            parts = [self.type_of(x, owner) for x in t]
            return " | ".join([p for p in parts if p != "None"] + (["None"] if "None" in parts else []))
        kind = t["type"]
        if kind == "array":
            return f"list[{self.type_of(t['items'], owner)}]"
        if kind == "map":
            return f"dict[str, {self.type_of(t['values'], owner)}]"
        if kind == "enum":
            return "Literal[" + ", ".join(repr(s) for s in t["symbols"]) + "]"
        if kind == "record":
            return self.record(t, t["name"])
        if kind == "fixed":
            return "bytes"
        return self.type_of(kind, owner)

    def record(self, schema: dict[str, Any], name: str) -> str:
        known = self.classes.get(name)
        if known == "":  # being written (a recursive reference)
            return name
        if known is not None:  # the same name in another file: the same record, or one of the file's own
            if self._source(schema, name) == known:
                return name
            own = self.top + name  # e.g. InvokeCommand's own ReplyTo (another Avro namespace)
            self.aliases[name] = own
            return self.record(schema, own)
        self.classes[name] = ""  # reserve: nested records are written before it
        src = self._source(schema, name)
        self.classes.pop(name)
        self.classes[name] = src
        return name

    def _source(self, schema: dict[str, Any], name: str) -> str:
        fields = [(f["name"], self.type_of(f["type"], name)) for f in schema["fields"]]
        doc = schema.get("doc", f"The {schema['name']} record.").replace('"""', "'''")
        if any(keyword.iskeyword(n) or not n.isidentifier() for n, _ in fields):
            body = ", ".join(f"{n!r}: {t!r}" for n, t in fields)
            src = f"{name} = TypedDict({name!r}, {{{body}}})\n"
        else:
            lines = "".join(f"    {n}: {t}\n" for n, t in fields) or "    pass\n"
            src = f"class {name}(TypedDict):\n    {_docstring(doc)}\n\n{lines}"
        return src


def _docstring(doc: str) -> str:
    one = " ".join(doc.split())
    if len(one) <= 108:
        return f'"""{one}"""'
    words, lines, line = one.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > 100:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return '"""' + "\n    ".join(lines) + '"""'


def render() -> str:
    """The source of records.py."""
    w = _Writer()
    for schema in json.loads((_DIR / "common.avsc").read_text()):
        w.record(schema, schema["name"])
    names: dict[tuple[str, int], str] = {}
    for (kind, version), file in sorted(_ALL.items()):
        schema = json.loads((_DIR / file).read_text())
        name = kind if version == CURRENT[kind] else f"{kind}V{version}"
        w.aliases, w.top = {}, kind
        names[(kind, version)] = w.record(schema, name)
    out = [
        '"""Typed faces of the Avro records and stored rows (TypedDicts): written by typegen.py from the\n'
        '.avsc files; do not edit. At run time a record is a plain dict."""\n\n',
        "from __future__ import annotations\n\n",
        "from typing import Literal, TypedDict  # noqa: F401 - Literal where a schema has an enum\n\n",
    ]
    for src in w.classes.values():
        out.append("\n" + src + "\n")
    out.append("\n# (kind, version) -> the TypedDict of its records\n")
    out.append("BY_KIND: dict[tuple[str, int], type] = {\n")
    for key, name in sorted(names.items()):
        out.append(f"    {key!r}: {name},\n")
    out.append("}\n")
    return "".join(out).replace("\n\n\n\n", "\n\n\n")


def main() -> int:
    target = _DIR / "records.py"
    target.write_text(render())
    print("wrote schemas/records.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
