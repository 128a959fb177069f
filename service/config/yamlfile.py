"""YAML that remembers where each value came from, so a problem can name its line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .limits import MAX_YAML_DEPTH, MAX_YAML_NODES
from .problems import Problem, display, quote, read_text

Location = tuple[str | int, ...]


@dataclass
class YamlDocument:
    file: str
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)

    def line_of(self, location: Location) -> int:
        """The line of the value at `location`, or of its nearest ancestor."""
        for end in range(len(location), -1, -1):
            if location[:end] in self.lines:
                return self.lines[location[:end]]
        return 1


class _Refused(yaml.MarkedYAMLError):
    """A value this loader cannot read (reported as not valid YAML), with its line."""

    def __init__(self, message: str, mark: yaml.Mark | None):
        super().__init__(problem=message, problem_mark=mark)


class _TooBig(_Refused):
    """Valid YAML beyond a limit: reported as it is."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that never follows an alias (each becomes a placeholder, and the
    document is refused), bounds nesting, and reports values Python cannot hold as
    problems on their line."""

    def __init__(self, text: str):
        super().__init__(text)
        self.aliases: list[yaml.Mark] = []
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            self.aliases.append(event.start_mark)
            # A placeholder, so neither this walk nor the constructor ever expands it.
            return yaml.ScalarNode("tag:yaml.org,2002:null", "", event.start_mark, event.end_mark)
        if self.depth >= MAX_YAML_DEPTH:
            raise _TooBig(f"values are nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark)
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            # Parsing stops here, before the rest of the file is read.
            raise _TooBig(f"the file holds more than {MAX_YAML_NODES:,} values (lists and groups included)", self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError):
            if node.tag == "tag:yaml.org,2002:timestamp":
                message = f"{quote(node.value)} is not a real date"
            elif node.tag == "tag:yaml.org,2002:int":
                message = "a number with too many digits"
            else:
                message = "a value that cannot be read"
            raise _Refused(message, node.start_mark) from None


def load_yaml(path: Path, problems: list[Problem], limit: int) -> YamlDocument | None:
    """Parse one YAML document of at most `limit` bytes; None (with the problems
    recorded) if that fails."""
    name = display(path)
    text = read_text(path, problems, limit)
    if text is None:
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if loader.aliases:
            first = loader.aliases[0].line + 1
            more = f" ({len(loader.aliases):,} in all)" if len(loader.aliases) > 1 else ""
            problems.append(
                Problem(
                    file=name,
                    line=first,
                    message=f"YAML aliases ('*name') are not allowed in this file{more}: write each value out in full",
                )
            )
            return None
        if node is None:
            problems.append(Problem(file=name, line=1, message="file is empty"))
            return None
        document = YamlDocument(file=name, data=None, lines={(): node.start_mark.line + 1})
        before = len(problems)
        _record_lines(node, (), document, problems)
        if len(problems) > before:
            return None
        document.data = loader.construct_document(node)
        return document
    except _TooBig as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        problems.append(Problem(file=name, line=line, message=exc.problem or ""))
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(Problem(file=name, line=line, message=f"not valid YAML: {quote(exc.problem or '', bare=True, limit=120)}"))
        return None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        problems.append(
            Problem(file=name, line=line, message=f"not valid YAML: contains a character YAML does not allow (U+{ord(char):04X})")
        )
        return None
    except yaml.YAMLError:
        problems.append(Problem(file=name, line=1, message="not valid YAML"))
        return None
    finally:
        loader.dispose()


def _record_lines(node: yaml.Node, here: Location, doc: YamlDocument, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(file=doc.file, line=line, message="a key must be a plain name, not a list or a group"))
                continue
            key = key_node.value
            if key in seen:
                problems.append(Problem(file=doc.file, line=line, message=f"{quote(key)} appears twice (also on line {seen[key]})"))
                continue
            seen[key] = line
            doc.lines[here + (key,)] = line
            _record_lines(value_node, here + (key,), doc, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[here + (i,)] = item.start_mark.line + 1
            _record_lines(item, here + (i,), doc, problems)
