"""`python -m cloak` runs the same app as the `cloak` command.

The app is the top-level `cli` module, installed beside the `cloak` package (in
site-packages, or the project root for an editable install). It is loaded from there by
path: `python -m` puts the current folder first on sys.path, where another project's
`cli.py` would otherwise be imported instead.
"""

import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

_path = Path(__file__).resolve().parent.parent / "cli.py"
_spec = spec_from_file_location("cli", _path)
if _spec is None or not _path.is_file():
    sys.exit(f"error: cloak's command-line module is missing ({_path}); reinstall cloak")
cli = module_from_spec(_spec)
sys.modules["cli"] = cli
_spec.loader.exec_module(cli)
cli.main()
