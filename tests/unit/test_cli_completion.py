"""``reprise completion bash|zsh|fish`` prints a script that knows every subcommand, action and flag."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from reprise.deploy import cli, cli_completion

SUBCOMMANDS = ("dev", "processor", "ingress", "topics", "services", "invocations", "subscriptions", "partitions",
               "state", "kafka", "completion")


@pytest.mark.parametrize("shell", cli_completion.SHELLS)
def test_each_script_names_every_subcommand(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for name in (*SUBCOMMANDS, *cli_completion.commands(cli.parser())):
        assert f" {name}" in script, (shell, name)
    assert "bootstrap-server" in script and "output" in script  # fish names flags without their dashes


def _bash_complete(script: str, *words: str) -> list[str]:
    """What the bash function offers for the command line ``words`` (the last one being typed)."""
    array = " ".join(f"'{w}'" for w in words)
    out = subprocess.run(["bash", "-c", f'{script}\nCOMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _reprise; '
                                        'printf "%s\\n" "${COMPREPLY[@]}"'],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_completes_subcommands_actions_and_flags() -> None:
    script = cli_completion.bash(cli.parser())
    assert "invocations" in _bash_complete(script, "reprise", "inv")
    assert _bash_complete(script, "reprise", "invocations", "") == ["ls", "describe", "cancel", "kill", "purge",
                                                                    "pause", "resume"]
    assert _bash_complete(script, "reprise", "partitions", "digest", "--boot") == ["--bootstrap-server"]
    assert "--output" in _bash_complete(script, "reprise", "services", "--o")
