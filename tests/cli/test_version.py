import subprocess
import sys
from importlib.metadata import version

import lingvis
from lingvis.cli import build_parser


def test_version_has_one_source():
    assert lingvis.__version__ == version("lingvis")


def test_version_flag(capsys):
    try:
        build_parser().parse_args(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert capsys.readouterr().out.strip() == f"lingvis {lingvis.__version__}"


def test_module_entry_point_prints_version():
    out = subprocess.run([sys.executable, "-m", "lingvis", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"lingvis {lingvis.__version__}"
