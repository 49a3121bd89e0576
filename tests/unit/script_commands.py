"""Reading a generated script in the tests: which commands it runs, with $SUDO, $AS_APP or
neither (a parse of the builders' own shell, not of any shell)."""

from __future__ import annotations

import re

# A command word: at a line start or after ; && || | ( { $( <(, behind any if/then/else/do/!/{.
COMMAND = re.compile(
    r"(?:^|&&|\|\||[;|(]|(?<!\$)\{|\$\(|<\()(?:[ \t]*(?:then|else|elif|if|while|do|!|\{)(?=[ \t]))*"
    r"[ \t]*(?:(\$SUDO|\$AS_APP)[ \t]+)?([\w./-]+)((?:[^;&|)$<\n]|\$(?!\()|<(?!\())*)", re.M)


def prefixed_commands(text: str) -> list[tuple[str, str, str]]:
    """(its prefix: "$SUDO", "$AS_APP" or "", command, its arguments) for every command in a
    script, assignments (NAME=value, and arithmetic) left out."""
    out = []
    text = re.sub(r"\$\(\([^)]*\)\)", "0", text)  # arithmetic
    for m in COMMAND.finditer(text):
        prefix, word, rest = m[1] or "", m[2], m[3]
        if rest.startswith("=") or word.isupper():
            continue
        out.append((prefix, word, rest.strip()))
    return out


def commands(text: str) -> list[tuple[bool, str, str]]:
    """(carries $SUDO, command, its arguments) for every command in a script (see
    prefixed_commands)."""
    return [(prefix == "$SUDO", word, args) for prefix, word, args in prefixed_commands(text)]
