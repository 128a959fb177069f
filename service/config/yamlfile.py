"""YAML that remembers where each value came from, so a problem can name its line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem, display, read_text

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


def load_yaml(path: Path, problems: list[Problem]) -> YamlDocument | None:
    """Parse one YAML document; None (with the problems recorded) if that fails."""
    name = display(path)
    text = read_text(path, problems)
    if text is None:
        return None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
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
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(Problem(file=name, line=line, message=f"not valid YAML: {exc.problem}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(file=name, line=1, message=f"not valid YAML: {exc}"))
        return None
    finally:
        loader.dispose()


def _record_lines(node: yaml.Node, here: Location, doc: YamlDocument, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(Problem(file=doc.file, line=line, message=f"'{key}' appears twice (also on line {seen[key]})"))
                continue
            seen[key] = line
            doc.lines[here + (key,)] = line
            _record_lines(value_node, here + (key,), doc, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[here + (i,)] = item.start_mark.line + 1
            _record_lines(item, here + (i,), doc, problems)
