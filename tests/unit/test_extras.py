"""A broker whose client library is not installed fails with one line naming the extra;
everything else (the memory broker, the CLI) works without it.

The missing library is simulated in a subprocess by an import hook that refuses it,
as a fresh ``pip install asyncq`` without the extra would have it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCK = textwrap.dedent('''
    import sys
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Refuse())
''')


def _run(blocked: set[str], code: str, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    program = BLOCK.format(blocked=blocked) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, check=False, cwd=cwd)


@pytest.mark.parametrize(("blocked", "url", "extra"), [
    ({"redis"}, "redis://127.0.0.1:6379/0", "redis"),
    ({"aio_pika", "aiormq", "pamqp"}, "amqp://guest:guest@127.0.0.1:5672/", "amqp"),
])
def test_a_missing_client_is_one_line_naming_the_extra(blocked: set[str], url: str,
                                                       extra: str) -> None:
    result = _run(blocked, f'''
        import asyncio, asyncq
        try:
            asyncq.App("x", broker={url!r})
        except asyncq.ConfigurationError as exc:
            print("refused:", exc)

        app = asyncq.App("x", broker="memory://extras")

        @app.task
        async def add(x: int, y: int) -> int:
            return x + y

        async def main() -> None:
            async with app, asyncq.Worker(app):
                print("memory works:", await (await add.enqueue(2, 3)))

        asyncio.run(main())
    ''')
    assert result.returncode == 0, result.stderr
    assert f"pip install 'asyncq[{extra}]'" in result.stdout
    assert "memory works: 5" in result.stdout


def test_the_cli_says_which_extra_to_install(tmp_path: Path) -> None:
    (tmp_path / "extras_app.py").write_text("import asyncq\napp = asyncq.App('x')\n")
    result = _run({"redis"}, '''
        import os, sys
        os.environ["ASYNCQ_BROKER"] = "redis://127.0.0.1:6379/0"
        sys.argv = ["asyncq", "enqueue", "extras_app:app", "x"]
        from asyncq.cli import main
        main()
    ''', cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "asyncq[redis]" in lines[0]
