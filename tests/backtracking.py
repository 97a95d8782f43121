"""A backtracking matcher that counts its steps, for checking ``matches``'s pattern refusal.

It runs a pattern the way Python's ``re`` does (the tree ``re``'s own parser makes,
tried in order, greedy or lazy, an iteration that matched nothing ending its loop)
and counts the instructions it executes, so a test can say how much work a pattern
costs on a text without timing anything. It knows the subset of patterns the tests
draw: literals, classes, ``.``, categories, groups, alternation, repetition,
lookarounds and the zero-width ``^ $ \\b \\B \\A \\Z``; text is ASCII.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from buttress.flags._regex import _PARSER

__all__ = ["TooManySteps", "compile_pattern", "run"]

MAXREPEAT: int = _PARSER.MAXREPEAT

Predicate = Callable[[str], bool]
Instruction = tuple[Any, ...]
"""``("char", predicate)``, ``("split", first, second)``, ``("jump", to)``,
``("assert", kind)``, ``("mark", register)``, ``("progress", register, loop, out)``,
``("look", positive, width behind, program)``, ``("match",)``."""


class TooManySteps(Exception):
    """The run went over its step budget."""


_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
}


def _predicate(op: str, av: Any, flags: int) -> Predicate:
    ignore_case = bool(flags & re.IGNORECASE)
    category_flags = re.ASCII if flags & re.ASCII else 0

    def same(char: str, code: int) -> bool:
        if ignore_case:
            return char.lower() == chr(code).lower()
        return char == chr(code)

    if op == "ANY":
        return (lambda char: True) if flags & re.DOTALL else (lambda char: char != "\n")
    if op == "LITERAL":
        return lambda char: same(char, av)
    if op == "NOT_LITERAL":
        return lambda char: not same(char, av)
    assert op == "IN", op
    items = [(item_op.name, item_av) for item_op, item_av in av]
    negate = bool(items) and items[0][0] == "NEGATE"
    tests: list[Predicate] = []
    for name, value in items:
        if name == "LITERAL":

            def literal(char: str, code: int = value) -> bool:
                return same(char, code)

            tests.append(literal)
        elif name == "RANGE":
            low, high = value

            def in_range(char: str, low: int = low, high: int = high) -> bool:
                variants = {char, char.lower(), char.upper()} if ignore_case else {char}
                return any(low <= ord(v) <= high for v in variants)

            tests.append(in_range)
        elif name == "CATEGORY":
            pattern = re.compile(_CATEGORIES[value.name], category_flags)

            def category(char: str, pattern: re.Pattern[str] = pattern) -> bool:
                return pattern.match(char) is not None

            tests.append(category)
        else:
            assert name == "NEGATE", name
    return lambda char: any(test(char) for test in tests) != negate


class _Compiler:
    def __init__(self) -> None:
        self.program: list[Instruction] = []
        self.registers = 0

    def emit(self, *instruction: Any) -> int:
        self.program.append(instruction)
        return len(self.program) - 1

    def patch(self, at: int, *instruction: Any) -> None:
        self.program[at] = instruction

    def items(self, items: Any, flags: int) -> None:
        for op, av in items:
            self.item(op.name, av, flags)

    def item(self, op: str, av: Any, flags: int) -> None:
        if op in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            self.emit("char", _predicate(op, av, flags))
        elif op == "SUBPATTERN":
            _group, add, remove, items = av
            self.items(items, (flags | add) & ~remove)
        elif op == "BRANCH":
            self.branch(av[1], flags)
        elif op in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, items = av
            self.repeat(items, low, high, greedy=op == "MAX_REPEAT", flags=flags)
        elif op == "AT":
            self.emit("assert", av.name)
        elif op in ("ASSERT", "ASSERT_NOT"):
            direction, items = av
            inner = _Compiler()
            inner.items(items, flags)
            inner.emit("match")
            back = items.getwidth()[0] if direction < 0 else 0
            self.emit("look", op == "ASSERT", back, inner.program)
        else:
            raise NotImplementedError(op)

    def branch(self, branches: list[Any], flags: int) -> None:
        jumps = []
        for index, branch in enumerate(branches):
            if index < len(branches) - 1:
                split = self.emit("split", None, None)
                self.items(branch, flags)
                jumps.append(self.emit("jump", None))
                self.patch(split, "split", split + 1, len(self.program))
            else:
                self.items(branch, flags)
        for jump in jumps:
            self.patch(jump, "jump", len(self.program))

    def repeat(self, items: Any, low: int, high: int, *, greedy: bool, flags: int) -> None:
        for _ in range(low):
            self.items(items, flags)
        # Each iteration beyond the minimum is tried (greedy) or not (lazy) first;
        # not taking one, or one that matched nothing, ends the repetition, as in re.
        loop = high == MAXREPEAT
        exits: list[tuple[int, int, int]] = []  # (split, progress, register)
        for _ in range(1 if loop else high - low):
            register = self.registers
            self.registers += 1
            split = self.emit("split", None, None)
            self.emit("mark", register)
            self.items(items, flags)
            progress = self.emit("progress", register, None, None)
            exits.append((split, progress, register))
        end = len(self.program)
        for split, progress, register in exits:
            body = split + 1
            self.patch(split, "split", *((body, end) if greedy else (end, body)))
            self.patch(progress, "progress", register, split if loop else progress + 1, end)


def compile_pattern(pattern: str) -> list[Instruction]:
    parsed = _PARSER.parse(pattern)
    compiler = _Compiler()
    compiler.items(parsed, parsed.state.flags)
    compiler.emit("match")
    return compiler.program


def _assertion(kind: str, text: str, at: int) -> bool:
    def word(i: int) -> bool:
        return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")

    if kind in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
        return at == 0
    if kind == "AT_END":
        return at == len(text) or (at == len(text) - 1 and text[at] == "\n")
    if kind == "AT_END_STRING":
        return at == len(text)
    if kind == "AT_BOUNDARY":
        return word(at - 1) != word(at)
    if kind == "AT_NON_BOUNDARY":
        return word(at - 1) == word(at)
    raise NotImplementedError(kind)


def run(program: list[Instruction], text: str, start: int, budget: int) -> tuple[bool, int]:
    """Match ``program`` at ``start`` (one starting position of ``re.search``):
    ``(matched, steps)``; ``TooManySteps`` past ``budget`` steps."""
    steps = 0
    stack: list[tuple[int, int, tuple[int, ...]]] = [(0, start, ())]
    while stack:
        pc, at, registers = stack.pop()
        while True:
            steps += 1
            if steps > budget:
                raise TooManySteps(steps)
            instruction = program[pc]
            kind = instruction[0]
            if kind == "char":
                if at < len(text) and instruction[1](text[at]):
                    pc, at = pc + 1, at + 1
                    continue
                break
            if kind == "split":
                stack.append((instruction[2], at, registers))
                pc = instruction[1]
            elif kind == "jump":
                pc = instruction[1]
            elif kind == "assert":
                if not _assertion(instruction[1], text, at):
                    break
                pc += 1
            elif kind == "mark":
                register = instruction[1]
                padded = registers + (-1,) * (register + 1 - len(registers))
                registers = (*padded[:register], at, *padded[register + 1 :])
                pc += 1
            elif kind == "progress":
                _kind, register, again, out = instruction
                pc = out if at == registers[register] else again
            elif kind == "look":
                _kind, positive, back, inner = instruction
                found = False
                if at - back >= 0:
                    found, spent = run(inner, text, at - back, budget - steps)
                    steps += spent
                if found is not positive:
                    break
                pc += 1
            else:
                return True, steps
    return False, steps
