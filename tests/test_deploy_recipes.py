"""The deploy recipes and the README use only commands, flags and settings that exist.

Every ``incident-sync`` invocation is read out of the files by plain text scanning (no
YAML library): systemd ``ExecStart=``, the Kubernetes containers' ``command``/``args``,
the Dockerfile's ``ENTRYPOINT``/``CMD``, the shell lines and backticked commands in
their comments, and the README's code. Each must name a real (sub)command, whose
``--help`` must list every option the invocation uses. The environment variables the
recipes set must be settings incident-sync reads, and the Kubernetes config must load.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sync.cli.main import app
from sync.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RECIPES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
runner = CliRunner()

# Words that separate simple commands on a shell line.
_SEPARATORS = {"&&", "||", ";", "|"}
_CRON_FIELD = re.compile(r"^[\d*/,-]+$")


def _is_us(word: str) -> bool:
    return word.rsplit("/", 1)[-1] == "incident-sync"


def commands_in_shell(line: str) -> Iterator[list[str]]:
    """The argument lists of each ``incident-sync`` simple command on a shell line."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # a quote left open by prose: not a command line
        return
    simple: list[str] = []
    for word in [*words, ";"]:
        if word not in _SEPARATORS:
            simple.append(word)
            continue
        # A crontab line: five schedule fields before the command.
        if len(simple) > 5 and all(_CRON_FIELD.match(w) for w in simple[:5]):
            simple = simple[5:]
        if simple and _is_us(simple[0]):
            yield simple[1:]
        elif simple[:2] == ["docker", "run"]:
            # The image's entry point is incident-sync: what follows the image is its argv.
            image = next((i for i, w in enumerate(simple) if w.startswith("incident-sync:")),
                         None)
            if image is not None:
                yield simple[image + 1:]
        simple = []


def _shell_lines(lines: list[str]) -> Iterator[str]:
    """Lines with their backslash continuations joined."""
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""


def _from_comments(text: str) -> Iterator[list[str]]:
    comments = [line.split("#", 1)[1] for line in text.splitlines()
                if line.lstrip().startswith("#") and not line.lstrip().startswith("#!")]
    for span in re.findall(r"`([^`]+)`", "\n".join(comments)):
        yield from commands_in_shell(span)
    # Indented comment lines are commands to type (the install steps).
    indented = [c for c in comments if c.startswith("   ") and "`" not in c]
    for line in _shell_lines(indented):
        yield from commands_in_shell(line)


def _from_systemd(text: str) -> Iterator[list[str]]:
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            yield from commands_in_shell(line.removeprefix("ExecStart="))


def _json_list(line: str) -> list[str]:
    return list(json.loads(line.split(":", 1)[1] if ":" in line.split("[")[0] else
                           line[line.index("["):]))


def _from_kubernetes(text: str) -> Iterator[list[str]]:
    command: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip().removeprefix("- ")
        if stripped.startswith("command:"):
            command = _json_list(stripped)
        elif stripped.startswith("args:") and command is not None:
            argv = [*command, *_json_list(stripped)]
            if _is_us(argv[0]):
                yield argv[1:]
            command = None


def _from_dockerfile(text: str) -> Iterator[list[str]]:
    entry = cmd = None
    for line in text.splitlines():
        if line.startswith("ENTRYPOINT "):
            entry = json.loads(line.removeprefix("ENTRYPOINT "))
        if line.startswith("CMD "):
            cmd = json.loads(line.removeprefix("CMD "))
    assert entry is not None and cmd is not None, "the image names its entry point and command"
    assert _is_us(entry[0])
    yield [*entry[1:], *cmd]


def _from_markdown(text: str) -> Iterator[list[str]]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    for block in blocks:
        for line in _shell_lines(block.splitlines()):
            yield from commands_in_shell(line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        # Table cells escape the pipe of "table|json" notation.
        yield from commands_in_shell(span.replace("\\|", "|").replace("|", "/"))


def invocations() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for path in [*RECIPES, ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        scanners: list[Any] = [_from_comments]
        if path.suffix in (".service", ".timer"):
            scanners.append(_from_systemd)
        elif path.suffix == ".yaml":
            scanners.append(_from_kubernetes)
        elif path.name == "Dockerfile":
            scanners.append(_from_dockerfile)
        elif path.suffix == ".md":
            scanners = [_from_markdown]
        for scan in scanners:
            found += [(name, argv) for argv in scan(text)]
    return found


INVOCATIONS = invocations()


@cache
def help_text(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"incident-sync {' '.join(path)} --help: {result.output}"
    return result.stdout


def resolve(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(the command path, the options used) of one invocation; unknown commands fail."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    options: list[str] = []
    for raw in argv:
        word = raw.strip("[]")
        if not word or word in ("...", "--", "-"):
            continue
        if word.startswith("-"):
            if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", word):
                options.append(word.split("=", 1)[0])
            continue
        # Typer vendors click: a group is what has subcommands.
        if getattr(command, "commands", None) and not options:
            sub = command.commands.get(word)
            assert sub is not None, f"no command `{' '.join([*path, word])}`"
            path.append(word)
            command = sub
    return tuple(path), options


def test_the_scan_finds_the_recipes_commands() -> None:
    sources = {source for source, _ in INVOCATIONS}
    assert {"deploy/systemd/incident-sync.service", "deploy/kubernetes/cronjob.yaml",
            "deploy/kubernetes/check-job.yaml", "deploy/Dockerfile", "README.md"} <= sources
    commands = {resolve(argv)[0] for _, argv in INVOCATIONS}
    assert {("run",), ("check",), ("demo",), ("audit",)} <= commands


@pytest.mark.parametrize(("source", "argv"), INVOCATIONS,
                         ids=[f"{s}: {' '.join(a)}" for s, a in INVOCATIONS])
def test_every_command_and_flag_used_exists(source: str, argv: list[str]) -> None:
    path, options = resolve(argv)
    shown = help_text(path)
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", shown), (
            f"{source}: `incident-sync {' '.join(argv)}`: {option} is not an option of "
            f"`incident-sync {' '.join(path)}`")


def test_the_scanner_rejects_what_does_not_exist() -> None:
    # The guard on the test above: a made-up command or flag is caught.
    with pytest.raises(AssertionError, match="no command `reconcile`"):
        resolve(["reconcile", "--now"])
    path, options = resolve(["run", "--interval", "5m"])
    assert options == ["--interval"]
    assert not re.search(r"(?<![\w-])--interval(?![\w-])", help_text(path))
    assert list(commands_in_shell("*/5 * * * * incident-sync run -c /etc/x.toml")) == [
        ["run", "-c", "/etc/x.toml"]]
    assert list(commands_in_shell("python3 -m venv /opt/incident-sync && "
                                  "/opt/incident-sync/bin/incident-sync demo")) == [["demo"]]


# ------------------------------------------------------------------ settings and files


def _settings_key(name: str) -> tuple[str, str]:
    """INCIDENT_SYNC_SERVICENOW__PASSWORD -> ("servicenow", "password"), if it exists."""
    assert name.startswith(ENV_PREFIX), name
    section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
    field = Settings.model_fields.get(section)
    assert field is not None and field.annotation is not None, f"{name}: no [{section}]"
    assert key in field.annotation.model_fields, f"{name}: no key {key} in [{section}]"
    return section, key


def kubernetes_secret() -> dict[str, str]:
    """The stringData of the Secret in cronjob.yaml."""
    text = (DEPLOY / "kubernetes" / "cronjob.yaml").read_text(encoding="utf-8")
    secret = next(doc for doc in text.split("\n---\n") if "\nkind: Secret\n" in doc)
    data = secret.split("stringData:\n", 1)[1]
    return {m[1]: json.loads(m[2]) for m in re.finditer(r"^  ([A-Z_]+): (\".*\")$", data, re.M)}


def kubernetes_config() -> str:
    """The incident-sync.toml of the ConfigMap in cronjob.yaml (a YAML block scalar)."""
    text = (DEPLOY / "kubernetes" / "cronjob.yaml").read_text(encoding="utf-8")
    lines = text.split("  incident-sync.toml: |\n", 1)[1].splitlines()
    block = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block) + "\n"


def test_the_secrets_the_recipes_set_are_settings_incident_sync_reads() -> None:
    env_file = (DEPLOY / "systemd" / "incident-sync.env").read_text(encoding="utf-8")
    systemd = [line.split("=", 1)[0] for line in env_file.splitlines()
               if line and not line.startswith("#")]
    secret = list(kubernetes_secret())
    for name in [*systemd, *secret]:
        _settings_key(name)
    wanted = {"INCIDENT_SYNC_SERVICENOW__PASSWORD", "INCIDENT_SYNC_JIRA__TOKEN"}
    assert wanted <= set(systemd) and wanted <= set(secret)


def test_the_kubernetes_config_loads_with_its_secret_and_uses_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "incident-sync.toml"
    config.write_text(kubernetes_config(), encoding="utf-8")
    for name, value in kubernetes_secret().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(config)
    settings.require_secrets()
    assert settings.state_url.startswith("postgresql+psycopg://")
    assert "state_url" not in kubernetes_config()  # the database password stays in the Secret


def test_the_systemd_timer_starts_the_shipped_service() -> None:
    timer = (DEPLOY / "systemd" / "incident-sync.timer").read_text(encoding="utf-8")
    (unit,) = re.findall(r"^Unit=(\S+)$", timer, re.M)
    assert (DEPLOY / "systemd" / unit).is_file()
    service = (DEPLOY / "systemd" / "incident-sync.service").read_text(encoding="utf-8")
    assert re.search(r"^Type=oneshot$", service, re.M)


def test_the_dockerfile_copies_what_the_repository_has() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), f"deploy/Dockerfile copies missing {source}"
    # Its packages are all there is to install: the ones pyproject.toml packages.
    packages = re.search(r'include = \[(.*?)\]', (ROOT / "pyproject.toml").read_text()).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert re.search(rf"^COPY {package} ", text, re.M), package
