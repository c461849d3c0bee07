"""``reprise completion bash|zsh|fish``: a shell completion script, generated from the parser itself so
it always knows every subcommand, action and flag the installed version has.

Installing each is in docs/cli.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

SHELLS = ("bash", "zsh", "fish")


def commands(ap: argparse.ArgumentParser) -> dict[str, tuple[list[str], list[str]]]:
    """Each subcommand: (the choices of its first positional, its flags)."""
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, p in sub.choices.items():
        flags = sorted(o for a in p._actions for o in a.option_strings if o.startswith("--"))
        firsts = [a for a in p._actions if not a.option_strings and a.choices]
        out[name] = (list(firsts[0].choices) if firsts else [], flags)
    return out


def _global_flags(ap: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in ap._actions for o in a.option_strings if o.startswith("--"))


def bash(ap: argparse.ArgumentParser) -> str:
    cmds = commands(ap)
    cases = "\n".join(f'        {name}) actions="{" ".join(acts)}"; flags="{" ".join(flags)}" ;;'
                      for name, (acts, flags) in cmds.items())
    return f"""# bash completion for reprise (reprise completion bash)
_reprise() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="" i actions="" flags=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ "${{COMP_WORDS[i]}}" != -* ]] && {{ cmd="${{COMP_WORDS[i]}}"; break; }}
    done
    if [[ -z "$cmd" ]]; then
        COMPREPLY=($(compgen -W "{' '.join(cmds)} {' '.join(_global_flags(ap))}" -- "$cur"))
        return
    fi
    case "$cmd" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif ((COMP_CWORD == i + 1)) && [[ -n "$actions" ]]; then
        COMPREPLY=($(compgen -W "$actions" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o default -F _reprise reprise
"""


def zsh(ap: argparse.ArgumentParser) -> str:
    cmds = commands(ap)
    cases = "\n".join(f"        {name}) words_=({' '.join(acts)} {' '.join(flags)}) ;;"
                      for name, (acts, flags) in cmds.items())
    return f"""#compdef reprise
# zsh completion for reprise (reprise completion zsh)
_reprise() {{
    local -a words_
    if (( CURRENT == 2 )); then
        words_=({' '.join(cmds)} {' '.join(_global_flags(ap))})
    else
        case "${{words[2]}}" in
{cases}
        esac
    fi
    _describe 'reprise' words_ || _files
}}
if [[ "$funcstack[1]" == "_reprise" ]]; then _reprise "$@"; else compdef _reprise reprise; fi
"""


def fish(ap: argparse.ArgumentParser) -> str:
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    cmds = commands(ap)
    names = " ".join(cmds)
    lines = ["# fish completion for reprise (reprise completion fish)", "complete -c reprise -f"]
    for name in cmds:
        lines.append(f"complete -c reprise -n 'not __fish_seen_subcommand_from {names}' -a {name} "
                     f"-d '{helps.get(name, '').replace(chr(39), '')[:60]}'")
    for name, (acts, flags) in cmds.items():
        if acts:
            lines.append(f"complete -c reprise -n '__fish_seen_subcommand_from {name}' -a '{' '.join(acts)}'")
        for flag in flags:
            lines.append(f"complete -c reprise -n '__fish_seen_subcommand_from {name}' -l {flag[2:]}")
    return "\n".join(lines) + "\n"


def add_parser(sub: argparse._SubParsersAction, parser: Callable[[], argparse.ArgumentParser]) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish): docs/cli.md")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(fn=lambda a: print({"bash": bash, "zsh": zsh, "fish": fish}[a.shell](parser()), end="") or 0)
