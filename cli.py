"""cloak's command line: a thin Typer app over the `cloak` library.

Each command validates its arguments, builds a config, calls the library and prints.
Library errors (CloakError) become one clear line and exit code 1, with no traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from cloak import PRESETS, CloakError, ProtectConfig

app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Protect photos against latent-diffusion editing (img2img, inpainting, 'nudify' "
         "apps, face swaps) before you post them.")


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


STRENGTH_HELP = "Preset: " + "; ".join(
    f"{name} (eps {p.eps255:g}/255, {p.steps} steps)" for name, p in PRESETS.items())


@app.command()
def protect(
    photos: list[Path] = typer.Argument(..., help="Photos (or folders) to protect."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the protected copies."),
    strength: str = typer.Option("medium", help=STRENGTH_HELP),
    eps: Optional[float] = typer.Option(None, help="Override the L-inf budget, in /255."),
    steps: Optional[int] = typer.Option(None, help="Override the number of attack steps."),
    models: str = typer.Option("taesd,taesdxl,taef1,taef2",
                               help="Autoencoders to attack, comma-separated."),
    objective: str = typer.Option("e2e", help="e2e (reconstruction error) or encoder "
                                              "(PhotoGuard latent target)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives identical output."),
    mask: Optional[Path] = typer.Option(None, help="Mask image: white = protect most."),
    model_dir: Optional[Path] = typer.Option(None, help="Folder with the weight files."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write a JSON report."),
) -> None:
    """Protect PHOTOS and write protected copies to --out, keeping size and format.

    Example: cloak protect me.jpg beach/*.heic --out protected/ --strength medium
    """
    from cloak import protect_file

    try:
        config = ProtectConfig(
            strength=strength, eps=None if eps is None else eps / 255, steps=steps,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            objective=objective, seed=seed, mask_path=str(mask) if mask else None,
            model_dir=str(model_dir) if model_dir else None)
    except CloakError as exc:
        fail(str(exc))
    reports, failed = [], 0
    for src in photos:
        dst = out / src.name
        try:
            out.mkdir(parents=True, exist_ok=True)
            report = protect_file(src, dst, config, overwrite=overwrite)
        except CloakError as exc:
            typer.secho(f"{src}: {exc}", fg=typer.colors.RED, err=True)
            failed += 1
            reports.append({"src": str(src), "status": "failed", "error": str(exc)})
            continue
        typer.echo(f"{src} -> {dst}: {report.summary()}")
        reports.append({"status": "protected", **report.to_dict()})
    if json_path:
        json_path.write_text(json.dumps({"files": reports}, indent=2))
    if failed:
        raise typer.Exit(2)


@app.command()
def gui() -> None:
    """Open the desktop drag-and-drop app (needs `pip install cloak[gui]`)."""
    try:
        from cloak.gui.app import main as gui_main
    except ImportError as exc:
        fail(f"the desktop app needs PySide6: pip install 'cloak[gui]' ({exc})")
    sys.exit(gui_main())


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
