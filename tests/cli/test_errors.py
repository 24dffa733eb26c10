"""Every user mistake gets one ``error:`` line and exit 1 or 2, never a traceback.

The regression cases of issue 21 run the installed ``toolmesh`` script against the
suite's mesh; the property-based test drives every command through typer's test
runner with generated command lines against a closed port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import toolmesh
from toolmesh.cli import app
from toolmesh.cli._errors import ToolmeshGroup, explain
from toolmesh_local.triton import free_port

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")


def toolmesh_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLMESH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80"},  # narrow: errors must still be one line
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_curl_style_image_argument_is_accepted(
    address: str, street_paths: list[Path], tmp_path: Path
) -> None:
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(street_paths[0].read_bytes())
    done = toolmesh_cli(
        "call", "find", "image=@frame.jpg", "object_name=person", "--address", address, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert {d["label"] for d in json.loads(done.stdout)} == {"person"}


@pytest.mark.parametrize(
    ("function", "value", "message"),
    [
        ("find", "nonsense", "error: argument image: no such file: 'nonsense'"),
        ("find", "@nonsense", "error: argument image: no such file: 'nonsense'"),
        ("greyscale", "", "error: argument image: needs an image file, e.g. image=frame.jpg"),
        ("greyscale", ".", "error: argument image: '.' is not a file"),
    ],
)
def test_image_arguments_name_what_is_wrong(
    address: str, tmp_path: Path, function: str, value: str, message: str
) -> None:
    done = toolmesh_cli(
        "call", function, f"image={value}", "object_name=person", "--address", address, cwd=tmp_path
    )
    assert done.returncode == 2
    assert one_error_line(done) == message


def test_image_option_follows_the_same_rules(address: str, tmp_path: Path) -> None:
    done = toolmesh_cli("call", "greyscale", "--image", str(tmp_path), "--address", address)
    assert done.returncode == 2
    assert one_error_line(done) == f"error: argument image: '{tmp_path}' is not a file"


def test_report_says_what_is_wrong_with_its_file(tmp_path: Path) -> None:
    missing = toolmesh_cli("report", "missing.jsonl", cwd=tmp_path)
    assert missing.returncode == 2
    assert one_error_line(missing) == "error: missing.jsonl: no such file"
    text = tmp_path / "notes.txt"
    text.write_text("not json\n")
    garbled = toolmesh_cli("report", str(text))
    assert garbled.returncode == 2
    assert one_error_line(garbled).startswith(f"error: {text}: not a JSON-lines results file")
    folder = toolmesh_cli("report", str(tmp_path))
    assert folder.returncode == 2 and one_error_line(folder) == f"error: {tmp_path}: not a file"


@pytest.mark.parametrize("command", ["run", "parallelize"])
def test_program_files_are_checked_before_anything_runs(
    command: str, tmp_path: Path, street_paths: list[Path]
) -> None:
    extra = ["--images", str(street_paths[0].parent), "--address", "127.0.0.1:1"]
    args = extra if command == "run" else []
    missing = toolmesh_cli(command, "missing.py", *args, cwd=tmp_path)
    assert missing.returncode == 2
    assert one_error_line(missing) == "error: missing.py: no such file"  # no progress bar first
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nIt's prose, not Python.\n")
    prose = toolmesh_cli(command, str(readme), *args)
    assert prose.returncode == 2
    assert one_error_line(prose).startswith(f"error: {readme}: not a Python program (line 3:")


def test_sdk_raises_its_own_argument_error_before_sending(tmp_path: Path) -> None:
    import asyncio

    async def attempt(value: object) -> toolmesh.ArgumentError:
        async with toolmesh.Client(f"127.0.0.1:{free_port()}") as client:
            with pytest.raises(toolmesh.ArgumentError) as caught:
                await client.call("find", image=value, object_name="person")
            return caught.value

    missing = asyncio.run(attempt(tmp_path / "nonsense.jpg"))
    assert missing.argument == "image"
    assert str(missing) == f"argument image: no such file: '{tmp_path / 'nonsense.jpg'}'"
    folder = asyncio.run(attempt(tmp_path))
    assert str(folder) == f"argument image: '{tmp_path}' is a directory, not an image file"
    assert isinstance(folder, toolmesh.WireFormatError) and isinstance(folder, ValueError)


# ---- the one place that turns exceptions into exit statuses ---------------------------------

probe = typer.Typer(cls=ToolmeshGroup, add_completion=False)


@probe.command()
def boom() -> None:
    raise RuntimeError("a bug\nover two lines")


@probe.command()
def unreachable() -> None:
    raise toolmesh.Unavailable(  # what the SDK raises for a dead gateway
        __import__("grpc").StatusCode.UNAVAILABLE, "connection refused"
    )


def test_unexpected_errors_are_one_line_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    shown = runner.invoke(probe, ["boom"])
    assert shown.exit_code == 1
    assert shown.stderr.strip() == (
        "error: unexpected RuntimeError: a bug over two lines "
        "(run with --debug or TOOLMESH_DEBUG=1 for the traceback)"
    )
    debugged = runner.invoke(probe, ["--debug", "boom"])
    assert isinstance(debugged.exception, RuntimeError)  # the traceback, for a bug report
    monkeypatch.setenv("TOOLMESH_DEBUG", "1")
    assert isinstance(runner.invoke(probe, ["boom"]).exception, RuntimeError)


def test_exit_statuses_follow_click() -> None:
    runner = CliRunner()
    remote = runner.invoke(probe, ["unreachable"])
    assert remote.exit_code == 1
    assert remote.stderr.strip() == "error: UNAVAILABLE: connection refused"
    usage = runner.invoke(probe, ["boom", "--nope"])
    assert usage.exit_code == 2
    assert usage.stderr.strip().startswith("error: No such option: --nope (see '")
    assert usage.stderr.strip().endswith(" boom --help')")
    assert explain(FileNotFoundError(2, "No such file or directory", "x.jpg")) == (
        2,
        "x.jpg: No such file or directory",
    )


# ---- fuzzing the command line -----------------------------------------------------------------

#: Commands and the options each declares; ``up``/``demo`` start servers and
#: ``models pull`` reaches a model hub, so their options are fuzzed only through --help.
COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("ls",): ["--address"],
    ("describe",): ["--address"],
    ("call",): ["--image", "--save", "--address"],
    ("status",): ["--address", "--run-dir"],
    ("run",): [
        "--images",
        "--out",
        "--tasks",
        "--concurrency",
        "--resume",
        "--timeout",
        "--address",
    ],
    ("report",): ["--node-type", "--prices", "--plots", "--json"],
    ("parallelize",): ["--output", "--graph", "--graph-format"],
    ("ask",): [
        "--image",
        "--save",
        "--address",
        "--model",
        "--repairs",
        "--replan",
        "--timeout",
        "--graph",
        "--graph-format",
    ],
    ("eval",): [
        "--model",
        "--question",
        "--limit",
        "--questions",
        "--out",
        "--replan",
        "--prices",
        "--address",
    ],
    ("down",): ["--run-dir"],
    ("trace",): ["--run-dir"],
    ("models", "ls"): ["--store"],
    ("models", "verify"): ["--store"],
    ("token", "create"): ["--file", "--functions", "--kserve"],
    ("profile",): [
        "--device-type",
        "--out",
        "--triton-url",
        "--function",
        "--samples",
        "--address",
    ],
    ("plan",): [
        "--profile",
        "--results",
        "--program",
        "--tasks",
        "--deadline",
        "--tasks-per-hour",
        "--out",
        "--hop-ms",
    ],
    ("up",): ["--help"],
    ("demo",): ["--help"],
    ("models", "pull"): ["--help"],
}


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cli-fuzz")
    (root / "empty.py").write_text("")
    (root / "prose.md").write_text("# not a program\n")
    (root / "results.jsonl").write_text('{"task": 0}\n')
    (root / "garbage.jsonl").write_bytes(b"\xff\xfe\x00not json\n")
    (root / "folder").mkdir()
    yield root


def values(root: Path) -> st.SearchStrategy[str]:
    paths = [str(root / n) for n in ("empty.py", "prose.md", "results.jsonl", "garbage.jsonl",
                                     "folder", "missing.py")]  # fmt: skip
    return st.one_of(
        st.sampled_from(paths),
        st.sampled_from(
            [
                "",
                "-",
                "--",
                "0",
                "-1",
                "1e309",
                "nan",
                str(2**70),
                "x=y",
                "image=",
                "image=@missing.jpg",
                "@",
                "threshold=2",
                "angle=ninety",
                "find",
                "a100=3",
                "*",
            ]
        ),
        st.text(max_size=12),
        st.binary(max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )


def command_lines(command: tuple[str, ...], root: Path) -> st.SearchStrategy[list[str]]:
    options = COMMANDS[command]
    token = st.one_of(
        st.sampled_from(options),
        st.sampled_from(["--bogus", "-z", "--help"]),
        values(root),
    )
    return st.lists(token, max_size=6).map(lambda rest: [*command, *rest])


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_fuzzed_command_lines_never_leak_a_traceback(
    command: tuple[str, ...], sandbox_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = sandbox_dir / "cwd" / "-".join(command)
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)  # relative paths the fuzzer makes up land here
    closed = f"127.0.0.1:{free_port()}"
    env = {
        "TOOLMESH_ADDRESS": closed,
        "TOOLMESH_HOME": str(sandbox_dir / "home"),
        "TOOLMESH_MODEL_DIR": str(sandbox_dir / "store"),
        "OPENAI_BASE_URL": f"http://{closed}/v1",
        "OPENAI_API_KEY": "unused",
        "TOOLMESH_DEBUG": "",
        "COLUMNS": "60",
    }
    runner = CliRunner()
    seen: list[int] = []

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=command_lines(command, sandbox_dir))
    def check(argv: list[str]) -> None:
        if command in (("up",), ("demo",), ("models", "pull")) and "--help" not in argv:
            argv = [*argv, "--help"]  # never start servers or reach for a model hub here
        result = runner.invoke(app, argv, env=env)
        output = result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            argv,
            repr(result.exception),
        )
        assert result.exit_code in (0, 1, 2), (argv, result.exit_code, output)
        assert "Traceback" not in output, (argv, output)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        if result.exit_code != 0 and errors:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert lines[-1].startswith("error:") and len(errors) == 1, (argv, result.stderr)
        seen.append(result.exit_code)

    check()
    assert seen, "the fuzzer ran no command line"


def test_run_checks_its_image_folder_first_even_with_a_task_count(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text("async def solve(image):\n    return 1\n")
    done = toolmesh_cli(
        "run", str(program), "--images", str(tmp_path / "nope"), "--tasks", "3", "--trusted"
    )
    assert done.returncode == 2
    assert one_error_line(done) == f"error: {tmp_path / 'nope'}: no such folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    none = toolmesh_cli("run", str(program), "--images", str(empty), "--trusted")
    assert none.returncode == 2
    assert one_error_line(none).startswith(f"error: {empty}: no images")
