"""`python -m cloak`, and the `cloak` command, run cloak's command-line app.

The app is the top-level `cli` module, installed beside the `cloak` package (in
site-packages, or the project root for an editable install). It is loaded from there by
path: `python -m` puts the current folder first on sys.path, where another project's
`cli.py` would otherwise be imported instead. And only where the file there is cloak's
(it carries CLI_MARK): a `cli.py` is a common name, and another package installed over
cloak's (pip replaces it without a word) ran as `cloak`, protecting nothing.
"""

from __future__ import annotations

import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

CLI_MARK = "cloak-command-line-module"  # a comment in cli.py's first lines
REINSTALL = "reinstall cloak (pip install --force-reinstall --no-deps cloak)"


def main(path: Path | None = None) -> None:
    """Run cli.main from `path` (cli.py beside the cloak package)."""
    path = path or Path(__file__).resolve().parent.parent / "cli.py"
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        sys.exit(f"error: cloak's command-line module is missing ({path}); {REINSTALL}")
    if CLI_MARK not in head:
        sys.exit(f"error: {path} is not cloak's command-line module (another package "
                 f"installed its own cli.py over it); {REINSTALL}")
    spec = spec_from_file_location("cli", path)
    if spec is None or spec.loader is None:
        sys.exit(f"error: cloak's command-line module can't be loaded ({path}); {REINSTALL}")
    cli = module_from_spec(spec)
    sys.modules["cli"] = cli
    spec.loader.exec_module(cli)
    cli.main()


if __name__ == "__main__":
    main()
