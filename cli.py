"""cloak's command line: a thin Typer app over the `cloak` library.

Each command validates its arguments, builds a config, calls the library and prints.
Library errors (CloakError) become one clear line and exit code 1, with no traceback.
"""
# cloak-command-line-module: the `cloak` command runs this file only where it says so
# (cloak/__main__.py: another package's cli.py installed over it is never run)

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

NOTHING_WRITTEN = "Interrupted; nothing was written."  # a Ctrl-C before any photo

try:  # torch is not among these (--help answers at once); each command imports it
    from cloak import PRESETS, Cancelled, CloakError, ProtectConfig, __version__
    from cloak.allocator import keep_freed_memory
    from cloak.channel_list import ALL_CHANNELS
    from cloak.config import (
        EDITING_SIZES,
        EPS255_RANGE,
        SEED_LIMIT,
        STRONGER,
        editing_size_ok,
    )
    from cloak.io import IMAGE_SUFFIXES
    from cloak.metadata import MetadataPolicy
    from cloak.models.registry import ALL_MODEL_NAMES
    from cloak.naming import PrintableFormatter, name_photos, naming, printable
    from cloak.preview import PREVIEW_SUFFIX
    from cloak.report import plural, shown_db
    from cloak.same_path import holds
except KeyboardInterrupt:
    sys.stderr.write(NOTHING_WRITTEN + "\n")
    sys.exit(130)

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Protect photos against latent-diffusion editing (img2img, inpainting, 'nudify' "
         "apps, face swaps) before you post them.")


def _print_version(asked: bool) -> None:
    if asked:
        import cloak

        typer.echo(f"cloak {cloak.__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print cloak's version and exit.")] = False) -> None:
    """Protect photos against latent-diffusion editing (img2img, inpainting, 'nudify'
    apps, face swaps) before you post them."""


@contextlib.contextmanager
def loading_libraries():
    """Around a command's first imports (torch among them: a second or two, before any
    work): a Ctrl-C meanwhile ends as one before any photo does, with one line and 130."""
    try:
        yield
    except KeyboardInterrupt:
        say(NOTHING_WRITTEN, err=True)
        raise typer.Exit(130) from None


_failure_hooks: list = []  # callables told each fail()'s message first (see reporting_failures)


def fail(message: str, code: int = 1) -> None:
    while _failure_hooks:  # each hook once: one that fails itself does not loop
        _failure_hooks.pop()(message)
    say(f"error: {printable(message)}", err=True, color=typer.colors.RED)
    raise typer.Exit(code)


def refuse_empty(option: str, value: str | None, advice: str) -> None:
    """An option given as "" (an unset variable in a script) is refused: not read as the
    current folder ("can't read mask .: is a folder")."""
    if value is not None and not value.strip():
        fail(f"{option} is empty: {advice}")


def refuse_json_dash(json_path: str | None) -> None:
    """`--json -`, the usual "to stdout" (which the lines take here), is refused as typed:
    it would write a file named '-'. `--json ./-` names that file on purpose (as a Path,
    both are "-")."""
    if json_path == "-":
        fail("--json - would write a file named '-' (the report is not printed); give a "
             "file name, such as report.json")


@contextlib.contextmanager
def reporting_failures(hook):
    """Within this block, a fail() first calls hook(message): a refused setting still
    leaves its --json report."""
    _failure_hooks.append(hook)
    try:
        yield
    finally:
        if hook in _failure_hooks:
            _failure_hooks.remove(hook)


DEFAULT_VERIFY_MODELS = ALL_MODEL_NAMES


def parse_channels(text: str | None) -> tuple[str, ...]:
    """'instagram,jpeg50' -> ('as-is', 'instagram', 'jpeg50'); None -> every channel."""
    if text is None:
        return ALL_CHANNELS
    asked = [c.strip().lower() for c in text.split(",") if c.strip()]
    unknown = [c for c in asked if c not in ALL_CHANNELS]
    if unknown or not asked:
        what = f"unknown channel {unknown[0]!r}" if unknown else "needs at least one channel"
        fail(f"--channels: {what}; choose from {', '.join(ALL_CHANNELS)}")
    return tuple(c for c in ALL_CHANNELS if c == "as-is" or c in asked)


def parse_sizes(text: str | None) -> tuple[int, ...] | None:
    """'512,1024' -> (512, 1024); None -> None (the preset's)."""
    if text is None:
        return None
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        fail(f"--editor-sizes takes whole numbers separated by commas, got {text!r}")
    if not sizes:  # an unset shell variable: not "no sizes", which would drop the preset's
        fail(f"--editor-sizes needs at least one size, such as 512 or 512,1024; got {text!r}")
    low, high, multiple = EDITING_SIZES
    for size in sizes:
        if not editing_size_ok(size):
            fail(f"--editor-sizes: each size must be a multiple of {multiple} from {low} to "
                 f"{high} (editors resize to multiples of 8), got {size}")
    return sizes


def parse_models(text: str) -> tuple[str, ...]:
    """'taesd, TAEF1,taesd' -> ('taesd', 'taef1'): each once, in the order given; an
    unknown or missing name fails naming --models (the library's refusal didn't say which
    option it was about)."""
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    unknown = [m for m in names if m not in ALL_MODEL_NAMES]
    if unknown or not names:
        what = f"unknown model {unknown[0]!r}" if unknown else f"no model named in {text!r}"
        fail(f"--models: {what}; choose from {', '.join(ALL_MODEL_NAMES)} (comma-separated)")
    return names


MODEL_DIR_HELP = ("Folder with the weight files (searched first; then $CLOAK_MODEL_DIR, then "
                  "the user cache, then a download on first use, which CLOAK_OFFLINE=1 "
                  "turns off).")
DEVICE_HELP = ("Where to compute: auto (a CUDA GPU, then an Apple GPU, then the CPU), cpu, "
               "cuda, cuda:1 or mps.")
DEVICE_ENV = "CLOAK_DEVICE"  # cloak.device.DEVICE_ENV (not imported here: that loads torch)


def parameter_source(parameter: str) -> str | None:
    """Where the running command's `parameter` (its Python name) took its value from:
    "COMMANDLINE", "ENVIRONMENT", "DEFAULT"...; None outside a command."""
    try:  # newer typer vendors click
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context
    context = get_current_context(silent=True)
    source = context.get_parameter_source(parameter) if context else None
    return source.name if source is not None else None


def taken_from_environment(parameter: str) -> bool:
    """Whether the running command's `parameter` took its value from its environment
    variable, not the command line or its default."""
    return parameter_source(parameter) == "ENVIRONMENT"


def check_device(device: str | None) -> str | None:
    """The --device asked for, checked now (one line if this machine lacks it); None for
    auto. Auto skipping a GPU this torch build can't run is said once."""
    from cloak.device import cuda_unusable_reason, pick_device

    typed = device
    device = (device or "").strip().lower() or None
    try:
        picked = pick_device(device)
    except CloakError as exc:
        if taken_from_environment("device"):  # the user may not know it is set
            fail(f"{DEVICE_ENV}={typed} (set in the environment; --device overrides it): "
                 f"{exc}")
        fail(f"--device: {exc}")
    if device in (None, "auto") and picked.type != "cuda" and (
            reason := cuda_unusable_reason()):
        say(f"note: {reason} (--device cpu silences this)", color=typer.colors.YELLOW,
            err=True)
    return None if device == "auto" else device


STRENGTH_HELP = "Preset: " + "; ".join(
    f"{name} (eps {p.eps255:g}/255, {p.steps} steps, editing size "
    f"{'+'.join(str(v) for v in (p.view_sizes or (p.working_size,)))})"
    for name, p in PRESETS.items()) + (
    ". fast is a quick, light pass: on the 25 dev photos its weakest model's damage was "
    "'weak' or 'none' on every photo; medium is the protection to post with.")


def eps_in_range(value: float | None) -> float | None:
    """--eps as given, refused unless a number from 1 to 32 (click's own range check read
    "nan" as over the top of the range)."""
    low, high = EPS255_RANGE
    if value is not None and not low <= value <= high:  # NaN fails it too
        what = "not a number" if math.isnan(value) else f"{value:g} is out of range"
        raise typer.BadParameter(f"{what}: give {low} to {high} (/255)", param_hint="'--eps'")
    return value


@app.command(short_help="Protect photos; write protected copies to --out.")
def protect(
    photos: Annotated[list[str], typer.Argument(
        metavar="PHOTOS", help="Photos, or folders to walk for photos (non-photos are skipped).")],
    out: Annotated[str, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder for the protected copies.")],
    strength: Annotated[str, typer.Option(metavar="PRESET", help=STRENGTH_HELP)] = "medium",
    eps: Annotated[float | None, typer.Option(
        metavar="N", callback=eps_in_range, help="Override the L-inf budget, in /255 (1 to 32; an 8-bit photo "
        "can't change by less than 1).")] = None,
    steps: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Override the number of attack steps.")] = None,
    models: Annotated[str, typer.Option(
        metavar="NAMES", help="Autoencoders to attack, comma-separated.")] = ",".join(ALL_MODEL_NAMES),
    objective: Annotated[str, typer.Option(
        metavar="NAME", help="e2e (reconstruction error), latent (untargeted latent push) or encoder "
             "(PhotoGuard latent target).")] = "e2e",
    seed: Annotated[int, typer.Option(
        min=0, max=SEED_LIMIT - 1,
        metavar="N", help="Seed (0 to 2^63-1) for what is drawn at random (--robust's posting transforms, --objective "
             "latent's start); runs with the same settings give identical output on the same "
             "machine (CPU) at the same thread count (--jobs 2 gives each photo fewer threads "
             "than --jobs 1, and so another copy). The default attack draws nothing, so the seed changes nothing "
             "there.")] = 0,
    mask: Annotated[str | None, typer.Option(  # str: typer reads "" as Path(".")
        metavar="MASK", help="Mask image: white = protect most. Draw it on the photo as shown (same "
             "shape; any size): a photo of another shape fails with a line saying so, and "
             "the others go on.")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        readable=False,
        metavar="DIR", help=MODEL_DIR_HELP)] = None,
    device: Annotated[str | None, typer.Option(
        envvar=DEVICE_ENV, show_envvar=True, metavar="NAME", help=DEVICE_HELP)] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace existing outputs that cloak did not make from these photos with these "
             "settings (photos already done are still skipped). A file beside the original "
             "that cloak never made (a.png when a.gif is protected into its own folder) is "
             "never replaced.")] = False,
    force: Annotated[bool, typer.Option(
        help="Protect again photos already protected with these settings; "
             "implies --overwrite (and is refused with --no-overwrite).")] = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", metavar="N", help="Photos protected in parallel, each in its own process with "
                             "cores/N threads. On an idle 2-core machine 1 is fastest "
                             "(README, '--jobs').")] = 1,
    measure: Annotated[bool, typer.Option(
        help="Measure each photo's protection (damage dB); --no-measure is faster.")] = True,
    robust: Annotated[bool | None, typer.Option(
        "--robust/--no-robust",
        help="Also optimise through random posting transforms (JPEG, resizing, blur; EOT) "
             "on a quarter of the rotation cycles. Off in every preset: on the dev photos it lowered "
             "the damage left after posting (see README).")] = None,
    editor_sizes: Annotated[str | None, typer.Option(
        metavar="SIZES", help="Editing sizes (long side, px) to protect against, comma-separated and taken in "
             "turn, e.g. 512,1024: SD 1.x/2.x edits at 512, SDXL and FLUX at 1024. Medium "
             "targets 512 only (its damage at 1024 was 0.7-1.6 dB on three photos); high "
             "targets both. Adding 1024 made medium about 3x slower (README, 'Editing "
             "size').")] = None,
    preview: Annotated[bool, typer.Option(
        help="Also write NAME.EXT.preview.png beside each output: protected, the size of "
             "the change amplified x10 and the budget map, so you can see where the noise "
             "went (no unprotected copy, nor a way to rebuild one).")] = False,
    json_path: Annotated[str | None, typer.Option(  # str: typer reads "" as Path(".")
        "--json", metavar="PATH", help="Write a JSON summary with each file's status and report (an "
        "existing file is replaced only if it is a cloak report).")] = None,
    keep_gps: Annotated[bool, typer.Option(
        "--keep-gps",
        help="Keep the GPS position, and the time zone, air pressure and water depth that "
             "also hint where the photo was (all dropped by default).",
        rich_help_panel="Metadata")] = False,
    keep_serials: Annotated[bool, typer.Option(
        "--keep-serials",
        help="Keep camera/lens serial numbers, owner name, image unique ID and free-text "
             "notes (description, comments, keywords; all dropped by default). The maker "
             "note is never kept. Not with --strip-exif, which drops them.",
        rich_help_panel="Metadata")] = False,
    strip_names: Annotated[bool, typer.Option(
        "--strip-names",
        help="Drop the artist, author, creator and copyright names (kept by default: a "
             "camera set up with its owner's name writes it into every photo); the date "
             "and camera stay.", rich_help_panel="Metadata")] = False,
    strip_exif: Annotated[bool, typer.Option(
        "--strip-exif",
        help="Drop capture date, camera, exposure, copyright and author too (kept by "
             "default); orientation and colour profile stay.",
        rich_help_panel="Metadata")] = False,
    icc: Annotated[bool, typer.Option(
        help="Keep the colour profile. --no-icc changes the colours of photos that are not "
             "sRGB.", rich_help_panel="Metadata")] = True,
    ai_notice: Annotated[bool, typer.Option(
        help="Write the XMP 'no AI training' notice (plus:DataMining = prohibited) and a "
             "note that the photo is protected.", rich_help_panel="Metadata")] = True,
) -> None:
    """Protect PHOTOS and write protected copies to --out, keeping size and format.

    Folders are walked recursively and mirrored: holiday/x/a.jpg -> OUT/holiday/x/a.jpg.
    Single files go straight into --out. Files that are not photos are skipped.

    Crop and edit photos before protecting them: a crop afterwards (even a few pixels,
    or to a square) removes most of the protection.

    Run the same command again to resume: photos already protected with the same
    settings are skipped (--force redoes them). Ctrl-C stops after the current step
    and leaves no partial files.

    Exit codes: 0 all photos protected or skipped; 1 bad usage, settings, missing
    weights or no photos found (nothing done), or a --json report that could not be
    written after the run (the photos were written); 2 some photos failed (the rest were
    done; a single photo that can't be read counts here); 130 interrupted.

    Example: cloak protect me.jpg holiday/ --out protected/ --strength medium
    """
    with loading_libraries():
        from cloak import batch

    refuse_empty("--out", out, "give the folder for the protected copies")
    refuse_empty("--mask", mask, "give the mask image, or leave --mask out")
    refuse_empty("--json", json_path, "give the report's file name, or leave --json out")
    refuse_json_dash(json_path)
    # `--out=~/protected`: the shell leaves a ~ after `=` as it is; a folder named "~"
    # in the current folder is never what was meant (nor for --json and --mask)
    out = Path(os.path.expanduser(out))
    json_path = Path(os.path.expanduser(json_path)) if json_path else None
    mask = Path(os.path.expanduser(mask)) if mask else None
    check_json_path(json_path, out)

    def leave_report(message: str) -> None:  # a refused setting leaves this run's report
        if json_path:  # at --json, not an earlier run's
            write_json(json_path, failed_run_report(out, {}, message), on_the_way_out=True)

    with reporting_failures(leave_report):
        if force and not overwrite and parameter_source("overwrite") == "COMMANDLINE":
            # --no-overwrite typed for safety: never ignored
            fail("--force replaces the files at the copies' names (it implies --overwrite), "
                 "so it can't be given with --no-overwrite: drop one of them")
        if keep_serials and strip_exif:  # never ignored without a word
            fail("--keep-serials can't be given with --strip-exif, which drops the serial "
                 "numbers and notes it would keep: drop one of them")
        photos = photo_paths(photos)
        jobs = jobs_within_cores(jobs, batch.max_jobs())
        check_out(out)
        check_model_dir(model_dir)
        device = check_device(device)
        try:
            config = ProtectConfig(
                strength=strength.strip().lower(), eps=None if eps is None else eps / 255,
                steps=steps, models=parse_models(models),
                objective=objective.strip().lower(), seed=seed,
                mask_path=str(mask) if mask else None,
                model_dir=str(model_dir) if model_dir else None, device=device,
                measure=measure,
                preview=preview, robust=robust, view_sizes=parse_sizes(editor_sizes),
                metadata=MetadataPolicy.choose(
                    keep_gps=keep_gps, keep_serials=keep_serials, strip_exif=strip_exif,
                    keep_icc=icc, notices=ai_notice, strip_names=strip_names))
        except CloakError as exc:
            fail(str(exc))
    result = run_protect_batch(photos, out, config, json_path, jobs=jobs, force=force,
                               overwrite=overwrite)
    code = exit_code(result)
    if json_path and result.out_folder_gone and any(
            holds(spelt(out), spelt(json_path)) for spelt in (os.path.abspath,
                                                             os.path.realpath)):
        # "nothing more is written there": not the report either (OUT made again for it,
        # or another run's OUT that has taken its place), however the two are spelt
        say(f"warning: --json: the report is not written: {printable(str(json_path))} is "
            "inside the output folder, which was removed, moved or replaced during the "
            "run", err=True, color=typer.colors.YELLOW)
    elif json_path:  # after the totals: a report that can't be written loses none of them
        write_json(json_path, finished_run_report(out, result, config), code=code or 1)
    if code:
        raise typer.Exit(code)


def photo_paths(photos: list[str]) -> list[Path]:
    """PHOTOS as paths; an empty argument (an unset "$PHOTO") fails rather than meaning
    the current folder."""
    if any(not p.strip() for p in photos):
        fail("a PHOTOS argument is empty (an unset variable?): name the photos or folders")
    return [Path(p) for p in photos]


def jobs_within_cores(jobs: int, cores: int) -> int:
    """--jobs, at most `cores` (batch.max_jobs: each job is a process holding the models,
    more only costs memory; said once)."""
    if jobs < 1:
        fail(f"--jobs must be at least 1, got {jobs}")
    if jobs > cores:
        from cloak.batch import WINDOWS_MAX_JOBS

        limit = (f"{cores}, the most worker processes Python runs on Windows"
                 if sys.platform == "win32" and cores == WINDOWS_MAX_JOBS
                 else f"the {cores} cores this run may use")
        say(f"--jobs {jobs} is more than {limit}; using {cores}",
            color=typer.colors.YELLOW, err=True)
    return min(jobs, cores)


def failed_run_report(out: Path, settings: dict, message: str, *, faces_asked=None,
                      interrupted: bool = False) -> dict:
    """The --json report of a run that stopped before any photo: its error, no files."""
    asked = {} if faces_asked is None else {"faces_asked": faces_asked}
    return {"out": str(out), "settings": settings, **asked, "error": message,
            "interrupted": interrupted, "counts": {}, "files": []}


def run_protect_batch(photos: list[Path], out: Path, config, json_path: Path | None, *,
                      jobs: int, force: bool, overwrite: bool):
    """Plan and run the batch under the progress view, then print the totals and notes.
    A failure or Ctrl-C before any photo leaves its --json report and exits (1 or 130)."""
    from cloak import batch
    from cloak.device import fp32_cpu_note, pick_device
    from cloak.pipeline import not_attacked

    view = BatchView()
    # said once there is work to do (not on a rerun that skips every photo)
    missed = not_attacked(config)  # a model or editing size left out unseen
    view.work_notes = [note for note in (
        missed and f"Note: {missed}.",
        fp32_cpu_note(pick_device(config.device), config.strength)) if note]  # device: auto
    with view, stop_on_ctrl_c(view.stopping) as should_stop:
        try:
            items = batch.plan(photos, out, should_stop)
            if (clash := json_clash(json_path, out, items)) is not None:
                view.close()  # refused before any work, as check_json_path refuses
                fail(clash)
            result = batch.run(items, out, config, jobs=jobs, force=force,
                               overwrite=overwrite, on_event=view.on_event,
                               should_stop=should_stop)
        except (CloakError, OSError, KeyboardInterrupt) as exc:  # before any photo
            view.close()
            stopped_before_any_photo(exc, out, config, json_path)
    say(view.totals(result), err=True)
    for note in (instagram_crop_note(result), little_protection_note(result, config)):
        if note:
            say(note, err=True, color=typer.colors.YELLOW)
    return result


def stopped_before_any_photo(exc: BaseException, out: Path, config,
                             json_path: Path | None) -> None:
    """Exit for a batch that stopped before any photo: 130 for Ctrl-C (the walk's
    Cancelled included), else 1 with one line; its --json report says why."""
    interrupted = isinstance(exc, (KeyboardInterrupt, Cancelled))
    if interrupted:
        message = "interrupted; nothing was written"
        say(NOTHING_WRITTEN, err=True)
    elif isinstance(exc, CloakError):
        message = str(exc)
    else:  # a path the library did not expect to be unreadable
        where = f" {exc.filename}" if exc.filename else ""
        message = f"can't read or write{where}: {exc.strerror or exc}"
    if json_path:  # this run's report, not an earlier run's left in its place
        write_json(json_path, failed_run_report(
            out, config.fingerprint(), message, faces_asked=config.faces,
            interrupted=interrupted), on_the_way_out=True)
    if interrupted:
        raise typer.Exit(130) from None
    fail(message)


def exit_code(result) -> int:
    """protect's exit code: 130 interrupted, 2 some photo failed, 1 no photos found."""
    from cloak import batch

    return (130 if result.interrupted else 2 if result.counts[batch.FAILED]
            else 1 if result.found_no_photos else 0)


def finished_run_report(out: Path, result, config) -> dict:
    """The --json report of a run that reached its photos. `settings` as run, as each
    copy's report and the manifest record them (face priority off where the face detector
    was missing); `faces_asked`: as asked."""
    no_photos = ({"error": BatchView.totals(result)}  # as a run that stopped before any
                 if result.found_no_photos and not result.interrupted else {})  # photo
    return {"out": str(out), "settings": result.settings or config.fingerprint(),
            "faces_asked": config.faces, **result.to_dict(), **no_photos}


@contextlib.contextmanager
def measuring_bar(description: str):
    """A transient progress bar on stderr, on terminals only; yields the callback
    `progress(fraction, what)` that verify_images calls."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True, highlight=False)
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda fraction, what: bar.update(task, completed=fraction,
                                                description=f"{description}: {what}")


class _LinesHandler(logging.Handler):
    """Log records (warnings) as BatchView lines, so they print above a live progress bar
    instead of through it."""

    def __init__(self, view: BatchView) -> None:
        super().__init__(logging.WARNING)
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.view.line(f"{record.levelname}: {record.getMessage()}", err=True,
                           color="yellow")
        except Exception:  # noqa: BLE001 - logging must never raise (handleError reports it)
            self.handleError(record)


class BatchView:
    """Renders batch events: a progress bar with count and ETA on stderr (terminals only),
    one line per protected photo on stdout, one line per failure or notable skip on stderr."""

    def __init__(self, console=None, preparing: str = "looking for photos") -> None:
        """`console`: where the bar and lines go (a rich Console); stderr by default.
        `preparing`: what the spinner says until there is work to count."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(
            # markup off: a photo named "a[/x].jpg" is a name, not a closing tag
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=self.console, transient=True,
            redirect_stdout=False, redirect_stderr=False,
            disable=not self.console.is_terminal)
        self.task = None
        self.work_notes: list[str] = []  # said at "todo" when there are photos to protect
        self.preparing_label = preparing
        self.preparing = None  # "looking for photos": finding and checking them, until todo
        self.downloads: dict[str, int] = {}  # weight file -> its download's task
        self.finished = 0
        self.running: dict[int, float] = {}  # id(item) -> fraction done
        self._paused = False  # the bar taken off the terminal for a line to a pipe

    def __enter__(self) -> None:
        self.progress.start()
        # a big folder (or a rerun that hashes what a restore touched) takes a while
        self.preparing = self.progress.add_task(self.preparing_label, total=None)
        if self.progress.live.is_started:  # a terminal: warnings print above the bar
            root = logging.getLogger()
            self._log_handlers = root.handlers[:]
            root.handlers = [name_photos(_LinesHandler(self))]

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._paused = False
        self.progress.stop()
        if getattr(self, "_log_handlers", None) is not None:
            logging.getLogger().handlers = self._log_handlers
            self._log_handlers = None

    def line(self, text: str, err: bool = False, color: str | None = None) -> None:
        """One line to stderr or stdout. A reader that left (`| head`) doesn't stop the
        batch: the rest of its lines go nowhere, and the photos are still protected."""
        text = printable(text)
        stream = sys.stderr if err else sys.stdout
        if stream is None:  # closed (`>&-`): its lines go nowhere, the photos go on
            return
        try:
            try:
                self._print(text, err, color)
            except UnicodeEncodeError:  # a name in a script the output's code page lacks
                # (Windows, output redirected to a file: cp1252, strict): escaped instead
                encoding = getattr(stream, "encoding", None) or "ascii"
                self._print(text.encode(encoding, "backslashreplace").decode(encoding),
                            err, color)
        except OSError:  # the reader gone (EPIPE), a full disk, a terminal closed (EIO)
            mute(stream)

    def _print(self, text: str, err: bool, color: str | None) -> None:
        if self._paused and err:  # (a line to the bar's terminal: the bar back first)
            self.resume_bar()
        if self.progress.live.is_started and (err or sys.stdout.isatty()):
            self.console.print(text, style=color, markup=False, soft_wrap=True)
        else:
            if self.progress.live.is_started:  # stdout a pipe that may reach this
                # terminal too (`| tee log`): the bar is taken off it first, or the line
                # is written after the bar, on its row; it comes back with the next
                # photo's first step, once the reader has written the line
                self.progress.stop()
                self._paused = True
            echo_coloured(text, color, err)

    def resume_bar(self) -> None:
        """The bar back on the terminal, after a line to a piped stdout took it off."""
        if self._paused:
            self._paused = False
            self.progress.start()

    def downloading(self, event) -> None:
        """A bar per weight file fetched on first use; a line where there is no terminal."""
        task = self.downloads.get(event.label)
        if task is None:
            size = f" ({event.total / 1e6:.1f} MB)" if event.total else ""
            if not self.console.is_terminal:
                self.line(f"downloading {event.label}{size} (first use only)", err=True)
            task = self.downloads[event.label] = self.progress.add_task(
                f"downloading {event.label}{size}", total=event.total or None)
        self.progress.update(task, completed=event.done)

    def stopping(self, signum: int = signal.SIGINT) -> None:
        again = ("Ctrl-C again" if signum == signal.SIGINT
                 else f"{signal.Signals(signum).name} again, or Ctrl-C,")  # `kill`: no key
        self.line(f"Stopping after the current step ({again} to stop now)...", err=True)

    def on_event(self, event) -> None:
        from cloak import batch

        if event.kind in ("progress", "download"):  # (not the next photo's start, at
            self.resume_bar()  # once: the reader may not have written the line yet)
        item = event.item
        if event.kind == "download":
            self.downloading(event)
        elif event.kind == "todo":
            if self.preparing is not None:
                self.progress.remove_task(self.preparing)
                self.preparing = None
            for note in self.work_notes if event.total else ():
                self.line(note, err=True, color="yellow")
            self.task = self.progress.add_task("protecting", total=event.total)
        elif event.kind == "start":
            self.running[id(item)] = 0.0
            if self.task is not None:
                self.progress.update(self.task, description=printable(item.src.name))
        elif event.kind == "progress":
            if id(item) in self.running:  # a worker's last report can come after "done"
                self.running[id(item)] = event.fraction
        elif event.kind == "done":
            if self.running.pop(id(item), None) is not None:
                self.finished += 1
            if item.status == batch.PROTECTED:
                self.line(f"{item.src} -> {item.dst}: {item.report.summary()}")
            elif item.status == batch.FAILED:
                self.line(item.failure(), err=True, color="red")
            elif item.status == batch.SKIPPED and item.message != batch.ALREADY_DONE:
                says_itself = item.message.startswith("its ")  # OUTPUT_FOLDER_SKIPPED
                self.line(f"{item.src}: {'' if says_itself else 'skipped, '}{item.message}",
                          err=True, color="yellow")
        if self.task is not None:
            self.progress.update(self.task,
                                 completed=self.finished + sum(self.running.values()))

    @staticmethod
    def totals(result) -> str:
        from cloak import batch

        counts = result.counts
        parts = [f"{counts[batch.PROTECTED]} protected"]
        resumed = sum(i.message == batch.ALREADY_DONE for i in result.items)
        if counts[batch.SKIPPED]:
            parts.append(f"{counts[batch.SKIPPED]} skipped"
                         + (f" ({resumed} already done; --force redoes them)" if resumed else ""))
        parts.append(f"{counts[batch.FAILED]} failed")
        if result.interrupted and counts[batch.CANCELLED]:
            return (f"Interrupted: {', '.join(parts)}, {counts[batch.CANCELLED]} not done. "
                    "Run the same command again to finish.")
        if result.interrupted:  # the stop came as the last photo was saved, or after
            return f"Interrupted once every photo was done: {', '.join(parts)}."
        if result.found_no_photos:
            from cloak.io import SUPPORTED

            if any(SUPPORTED in (item.message or "") for item in result.items):
                return "No photos found."  # a skipped file's line said what cloak reads
            return f"No photos found (cloak reads {SUPPORTED})."
        return "Done: " + ", ".join(parts) + "."




def little_protection_note(result, config) -> str | None:
    """A note when copies written in this run measured under verify's "weak" on their
    weakest model as saved ("none as saved" on their own lines), with what to try: first
    the preset's own steps and budget where `config` (the run's ProtectConfig) set fewer."""
    from cloak import batch
    from cloak.report import VERDICTS, verdict_for

    written = [i for i in result.items if i.status == batch.PROTECTED and i.report
               and i.report.min_damage_db is not None]
    feeble = [i for i in written if verdict_for(i.report.min_damage_db) == "none"]
    if not feeble:
        return None
    strength = config.strength
    preset = PRESETS[strength]
    cut = [f"--{name} {given:g} (the preset's {own:g})" for name, given, own in (
        ("steps", config.steps, preset.steps), ("eps", (config.eps or 0) * 255, preset.eps255))
        if given and given < own - 1e-6]
    if cut:
        advice = (f"{' and '.join(cut)} gave them less: leave "
                  f"{'them' if len(cut) > 1 else 'it'} out"
                  + (f", or try --strength {STRONGER[strength]}" if strength in STRONGER
                     else ""))
    else:
        advice = (f"--strength {STRONGER[strength]} protects more, at more time" if strength
                  in STRONGER else "small or very flat photos hold less protection")
    return (f"note: {len(feeble)} of {len(written)} copies carry little measurable "
            f"protection as saved (under {VERDICTS[-1][1]} dB on their weakest model, e.g. "
            f"{printable(feeble[0].src.name)}): {advice}.")


def instagram_crop_note(result) -> str | None:
    """A note when protected photos have a shape Instagram crops (taller than 3:4 or wider
    than 1.91:1): the crop moves the models' grid and takes most of the protection."""
    from cloak import batch
    from cloak.channel_list import INSTAGRAM_ASPECT

    lo, hi = INSTAGRAM_ASPECT
    protected = [i for i in result.items if i.status == batch.PROTECTED and i.report]
    tall = [i for i in protected if i.report.width / i.report.height < lo]
    wide = [i for i in protected if i.report.width / i.report.height > hi]
    cropped = tall + wide
    if not cropped:
        return None
    if tall and wide:
        shape = "taller than 3:4 or wider than 1.91:1"
        crop = "crop tall ones to 3:4 or 4:5 and wide ones to 1.91:1 or narrower"
    elif tall:
        shape, crop = "taller than 3:4", "crop them to 3:4 or 4:5"
    else:
        shape, crop = "wider than 1.91:1", "crop them to 1.91:1 or narrower"
    return (f"note: {plural(len(cropped), 'photo')} {'is' if len(cropped) == 1 else 'are'} "
            f"{shape} (e.g. {printable(cropped[0].src.name)}). Instagram crops such photos, "
            f"which removes most of the protection: to post them there, {crop} first, then "
            "protect them.")


def json_clash(json_path: Path | None, out: Path, items) -> str | None:
    """Why --json can't be written where it points, known only once the run is planned:
    it names --out or a folder the run writes copies into (made by the run, so not there
    when check_json_path looked); None where it is free of them."""
    if not json_path:
        return None
    target = os.path.abspath(json_path)
    folders = {os.path.abspath(out)}
    for item in items:
        if item.dst is not None:
            folder = Path(os.path.abspath(item.dst.parent))
            while str(folder) not in folders and folder != folder.parent:
                folders.add(str(folder))
                folder = folder.parent
    if target not in folders:
        return None
    what = "the --out folder" if target == os.path.abspath(out) else \
        "a folder this run writes copies into"
    return (f"--json {json_path} is {what}; give a file name, such as "
            f"{Path(out) / 'report.json'}")


# Ctrl-C, the polite stop of `kill`, a service manager or a scheduler's time limit, and
# the terminal closed (SIGHUP: by default it ended the run where it stood, a redo's record
# left saying the copy there was made with the new settings)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


@contextlib.contextmanager
def stop_on_ctrl_c(on_first: Callable[[int], None]):
    """The first Ctrl-C (or SIGTERM, SIGHUP) asks the run to stop cleanly (yields `should_stop`):
    the photo under way is cancelled, the summary and --json report written; the second
    raises KeyboardInterrupt at once."""
    stop = threading.Event()

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        on_first(signum)

    try:
        # SIGHUP, where the run was started ignoring it, stays ignored: `nohup cloak
        # protect …` goes on after its terminal closes, as the user asked (SIGINT is taken
        # whatever: a shell starts background jobs with it ignored)
        previous = [(number, signal.signal(number, handler)) for number in STOP_SIGNALS
                    if number != getattr(signal, "SIGHUP", None)
                    or signal.getsignal(number) is not signal.SIG_IGN]
    except ValueError:  # not the main thread: plain KeyboardInterrupt semantics
        yield stop.is_set
        return
    try:
        yield stop.is_set
    finally:
        for number, handler_before in previous:
            signal.signal(number, handler_before)


def check_json_path(json_path: Path | None, out: Path | None = None) -> None:
    """Fail before any work if --json can't be written where it points. Its folder may be
    --out itself, which the run creates. (os.path checks: Path's raise PermissionError
    where a folder can't be searched.)"""
    if not json_path:
        return
    if json_path.suffix.lower() in IMAGE_SUFFIXES:  # `--json me.jpg`
        fail(f"--json {json_path} names a photo file; give a .json file name")
    from cloak.manifest import JOURNAL_NAME, LOCK_NAME, MANIFEST_NAME

    if json_path.name in (MANIFEST_NAME, JOURNAL_NAME, LOCK_NAME):
        fail(f"--json {json_path} is the name of cloak's own record in an output folder; "
             "give another file name, such as report.json")
    folder = json_path.parent
    if out is not None and os.path.abspath(folder) == os.path.abspath(out) \
            and not os.path.lexists(out):
        return  # `--out protected/ --json protected/report.json` on a first run
    if not os.path.isdir(folder):
        fail(f"folder for --json {folder} does not exist (or can't be reached)")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"can't write --json into {folder} (permission denied)")
    if os.path.isdir(json_path):
        fail(f"--json {json_path} is a folder; give a file name, such as report.json")
    if os.path.lexists(json_path) and not is_cloak_report(json_path):
        fail(f"--json {json_path} exists and is not a cloak report, so it is not replaced; "
             "give another file name")


def is_cloak_report(path: Path) -> bool:
    """Whether the file at `path` is a report a `cloak protect` or `cloak verify --json`
    wrote (which a later run may replace); any other file is the user's."""
    try:
        info = os.lstat(path)  # a link, a FIFO (reading would block) or a device is not
        if not stat.S_ISREG(info.st_mode) or info.st_size > 256 * 2 ** 20:
            return False
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (
        {"out", "settings", "files"} <= data.keys()
        or {"original", "protected_copy", "verdict"} <= data.keys()
        or {"original", "protected", "verdict"} <= data.keys()  # verify's, until 9321a4c
        or {"photo", "score_db"} <= data.keys()
        or {"kind", "folder", "photos"} <= data.keys()  # verify FOLDER/'s receipts
        or {"kind", "originals", "protected_folder", "pairs"} <= data.keys())  # two folders


def check_model_dir(model_dir: Path | None) -> None:
    """A mistyped --model-dir fails now instead of falling back to other folders
    (`--model-dir=~/w`, where the shell leaves ~ as it is, is taken as the library takes
    it: the home folder)."""
    if model_dir is not None and not os.path.isdir(os.path.expanduser(model_dir)):
        fail(f"--model-dir {model_dir} is not a folder (or can't be reached)")


def check_out(out: Path) -> None:
    """--out must be a folder, or not exist yet (it is created): then the nearest part of
    its path that exists must be a folder too."""
    if os.path.islink(out) and not os.path.exists(out):  # a drive not mounted, or gone
        fail(f"--out {out} is a link to {os.readlink(out)}, which does not exist (or "
             "can't be reached); connect it, or give another folder")
    if os.path.lexists(out) and not os.path.isdir(out):
        fail(f"--out {out} is a file, not a folder; give a folder for the protected copies")
    if not os.path.lexists(out) and out.suffix.lower() in IMAGE_SUFFIXES:  # --out me_p.jpg
        fail(f"--out {out} looks like a photo's file name; --out names a folder for the "
             "protected copies (they keep their names), e.g. --out protected/ (to use a "
             "folder with such a name, create it first)")
    above = Path(os.path.abspath(out)).parent
    while not os.path.lexists(above) and above != above.parent:
        above = above.parent
    if not os.path.isdir(above):
        fail(f"--out {out} can't be made: {above} is a file, not a folder")


def as_is_means(original, copy) -> str:
    """What "as is" is for this pair: a copy of the original's size has not been posted
    (or was posted unchanged); a smaller one is as it came back from where it was posted,
    or as it was cropped since."""
    from cloak.comparable import crop_offset

    if original.size == copy.size:
        return "before posting"
    if crop_offset(original, copy) is not None:
        return "the copy as given, already cropped"
    return "the copy as given, already resized"


def write_json(json_path: Path, data: dict, code: int = 1, on_the_way_out: bool = False
               ) -> None:
    """Write --json atomically (a new hidden temp file beside it, then a rename), replacing
    the report a run before left there. A link at the temp file's name is never written
    through. A failure exits with `code`; `on_the_way_out` (the report of a run that
    fails anyway): a failure is a warning, so the run's own error line still follows."""
    from cloak.atomic import write_atomic
    from cloak.errors import OutputExistsError

    text = json.dumps(data, indent=2).encode("utf-8")
    try:  # a report is replaced; a file that appeared there during the run is not
        write_atomic(json_path, lambda fp: fp.write(text), overwrite=is_cloak_report)
    except CloakError as exc:
        message = str(exc)
        if isinstance(exc, OutputExistsError):
            message = (f"{json_path} appeared during the run and is not a cloak report, so "
                       "it is not replaced; the report was not written")
        if on_the_way_out:
            say(f"warning: --json: {printable(message)}", err=True,
                color=typer.colors.YELLOW)
            return
        _failure_hooks.clear()  # not the report again, into the same place, as a warning
        fail(f"--json: {message}", code)


def fetch_weights(names: tuple[str, ...], model_dir: str | None,
                  device: str | None = None) -> None:
    """Load `names` now, so a first-use download shows its progress bar."""
    from cloak.batch import download_event, preload_models

    view = BatchView(preparing="loading the models")
    with view:
        preload_models(ProtectConfig(models=names, model_dir=model_dir, faces=False,
                                     device=device),
                       lambda *download: view.on_event(download_event(*download)))


@app.command(short_help="Measure the protection a photo carries, as is and after posting.")
def verify(
    photo: Annotated[Path, typer.Argument(
        readable=False,  # cloak says why it can't read it (click: a usage error)
        metavar="PHOTO", help="The original photo (or a folder of originals), or a "
        "protected photo (or a folder of them) alone.")],
    protected: Annotated[Path | None, typer.Argument(
        readable=False,  # cloak says why it can't read it (click: a usage error)
        metavar="PROTECTED", help="The protected copy of PHOTO (or the folder cloak "
        "protect wrote the copies of the folder PHOTO to).")] = None,
    models: Annotated[str, typer.Option(
        metavar="NAMES", help="Autoencoders to measure, comma-separated (with the original; a photo alone "
        "gets the receipt, which uses taesd).")] = ",".join(DEFAULT_VERIFY_MODELS),
    model_dir: Annotated[Path | None, typer.Option(
        readable=False,
        metavar="DIR", help=MODEL_DIR_HELP)] = None,
    device: Annotated[str | None, typer.Option(
        envvar=DEVICE_ENV, show_envvar=True, metavar="NAME", help=DEVICE_HELP)] = None,
    json_path: Annotated[str | None, typer.Option(  # str: typer reads "" as Path(".")
        "--json", metavar="PATH", help="Write the figures as JSON (an existing file is replaced only if it "
        "is a cloak report).")] = None,
    channels: Annotated[str | None, typer.Option(
        metavar="NAMES", help="Channels to measure with the original, comma-separated (default: all of "
        "them): " + ", ".join(ALL_CHANNELS) + ". as-is is always measured. Fewer is "
        "quicker: each costs two autoencoder passes per model.")] = None,
) -> None:
    """Measure how much protection a photo carries, as it is and after simulated posting.

    With PHOTO (the original) and PROTECTED: invisibility (PSNR, SSIM, max change) and,
    per autoencoder, damage in dB (how much worse its round trip of the copy is than the
    original's; graded) and latent shift (how far the copy's latent moved, as a share of
    the original's: 0.35 = 35%; a diagnostic), as the photo is, after social-network
    presets (instagram, facebook, x, whatsapp: approximations) and clean-ups (JPEG,
    down-up, blur, a crop of a few pixels; grid: an editor that rounds its 512 px resize
    down; naive: an editor's downscale without antialiasing).
    The verdict (strong >= 3 dB, moderate >= 1.5, weak >= 0.5, else none, on the weakest
    model) is taken on the worst channel. All of that is at 512 px (SD 1.x/2.x's editing
    size); the SDXL and FLUX stand-ins are also measured at 1024 px, as the photo is. A
    copy re-saved as a lossy JPEG since (a download, an app) is also compared with the
    original saved the same way: a note says so where compression alone reaches 0.5 dB.

    With one photo alone: a no-reference receipt (protected or not; can't tell under
    500 px), which also works on a copy downloaded back from a platform. It always uses
    taesd, the calibrated detector (--models is for the comparison with the original).

    With a folder alone: the receipt of every photo in it (copies downloaded back
    from a platform, say), one line each and how many were called protected.

    With two folders, the originals and the folder cloak protect wrote to: every copy in
    it measured against its original (found by the same path, or, for a folder that was
    given to cloak protect, by the path below its name), one line each and a count of the
    verdicts; --json keeps every pair's figures. The 1024 px measurement is left out.

    Exit codes: 0 measured (whatever the verdict; with folders, a copy with no original
    is listed and not measured); 1 bad input or missing weights; 2 (folders) some photos
    or pairs could not be read or measured; 130 interrupted.

    Examples: cloak verify me.jpg protected/me.jpg;
    cloak verify holiday/ protected/ --channels instagram
    """
    refuse_empty("--json", json_path, "give the report's file name, or leave --json out")
    refuse_json_dash(json_path)
    json_path = Path(os.path.expanduser(json_path)) if json_path else None  # `--json=~/r`

    def leave_report(message: str) -> None:  # a refused or failed verify leaves this
        if json_path:  # run's report at --json, not an earlier pair's verdict
            skeleton = verify_report_skeleton(photo, protected)
            if "interrupted" in skeleton:  # a folder's, as its full report says it
                skeleton["interrupted"] = message == "interrupted"
            write_json(json_path, {**skeleton, "error": message,
                                   "cloak_version": __version__}, on_the_way_out=True)

    try:  # a Ctrl-C while the checks load their libraries (a second): as one later on
        check_json_path(json_path)
        folder_exit, result = run_verify(photo, protected, channels, models, model_dir,
                                         device, json_path, leave_report)
    except KeyboardInterrupt:
        leave_report("interrupted")  # not an earlier pair's verdict in its place
        say("Interrupted; no figures were written.", err=True)
        raise typer.Exit(130) from None
    if folder_exit is not None:  # verify_folders wrote its own report
        if folder_exit:
            raise typer.Exit(folder_exit)
        return
    if json_path:
        write_json(json_path, result)


def run_verify(photo: Path, protected: Path | None, channels: str | None, models: str,
               model_dir: Path | None, device: str | None, json_path: Path | None,
               leave_report) -> tuple[int | None, dict | None]:
    """verify's work once --json is checked: (the folder form's exit code, None), having
    written its own report, or (None, a pair's or a photo's report). A refused or failed
    run calls `leave_report(message)` and exits."""
    from cloak.errors import UnsupportedImageError, is_out_of_memory, out_of_memory_message
    from cloak.same_path import PATTERN_MATCHED_NOTHING, looks_like_pattern

    md = str(model_dir) if model_dir else None
    folder_exit, result = None, None  # verify_folders' exit code, when two folders were given
    with reporting_failures(leave_report):
        measured = parse_channels(channels)
        names = parse_models(models)
        check_model_dir(model_dir)
        device = check_device(device)
        # the receipt says when --models or --channels, which it ignores, were given
        ignored_options = channels is not None or names != DEFAULT_VERIFY_MODELS
        try:
            for given in (photo, protected):  # `cloak verify protected/*.JPG`, none .JPG:
                # the shell passes the pattern on as typed (said as protect says it)
                if given is not None and looks_like_pattern(given) and \
                        not os.path.lexists(given):
                    raise UnsupportedImageError(
                        f"{given}: {PATTERN_MATCHED_NOTHING}")
            # os.path.isdir: False (not an error) for a path that can't be reached; the
            # photo's own load then says why
            folders = [p for p in (photo, protected) if p is not None and os.path.isdir(p)]
            if folders and protected is None:
                folder_exit = receipt_folder(photo, md, device, json_path, ignored_options)
            elif len(folders) == 1:
                refuse_folder_and_file(folders[0], protected if folders[0] == photo else photo)
            elif folders:
                folder_exit = verify_folders(photo, protected, measured, names, md, device,
                                             json_path)
            else:
                result = verify_photo_files(photo, protected, measured, names, md, device,
                                            ignored_options)
        except typer.Exit:  # a fail() within (click's Exit is a RuntimeError): said already
            raise
        except CloakError as exc:
            fail(str(exc))
        except OSError as exc:  # a path the library did not expect to be unreadable
            where = f" {exc.filename}" if exc.filename else ""
            fail(f"can't read{where}: {exc.strerror or exc}")
        except (MemoryError, RuntimeError) as exc:  # torch's OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(exc):
                leave_report(f"unexpected error ({type(exc).__name__}: {exc})")
                raise
            fail(out_of_memory_message(exc, "to compare these photos at full size",
                                       "compare a smaller copy of both (the same size)"))
        except Exception as exc:  # a bug: its traceback follows, and --json says so too
            leave_report(f"unexpected error ({type(exc).__name__}: {exc})")
            raise
    return folder_exit, result


def verify_report_skeleton(photo: Path, protected: Path | None) -> dict:
    """The --json report of a verify that failed, by what was given: its kind and inputs,
    with no figures (a folder's: no rows, and whether it was interrupted)."""
    if protected is None and os.path.isdir(photo):
        return {"kind": "receipts", "folder": str(photo), "photos": [], "interrupted": False}
    if protected is None:
        return {"kind": "receipt", "photo": str(photo), "score_db": None, "protected": None}
    if os.path.isdir(photo) and os.path.isdir(protected):
        return {"kind": "folders", "originals": str(photo), "protected_folder": str(protected),
                "pairs": [], "interrupted": False}
    return {"kind": "comparison", "original": str(photo), "protected_copy": str(protected),
            "verdict": None}


def refuse_folder_and_file(folder: Path, other: Path) -> None:
    """verify given a folder and a file: a missing file is said first (a typo), then the
    mismatch."""
    from cloak import io
    from cloak.errors import UnsupportedImageError

    if not os.path.lexists(other):  # says it is missing (or unreachable)
        io.load_photo(other)
    raise UnsupportedImageError(
        f"{folder} is a folder and the other a file: give two photos (the "
        "original, then its protected copy), or two folders (the originals, then the "
        "folder cloak protect wrote to)")


def verify_photo_files(photo: Path, protected: Path | None, measured: tuple[str, ...],
                       names: tuple[str, ...], model_dir: str | None, device: str | None,
                       ignored_options: bool) -> dict:
    """verify of one photo (its receipt) or of a photo and its protected copy: the
    report. Bad paths are said before any weights are fetched."""
    from cloak import io
    from cloak.errors import UnsupportedImageError
    from cloak.verify import colour_profile, photo_image

    if protected is not None and io.same_file(photo, protected):
        raise UnsupportedImageError(f"{photo} was given twice: give the "
                                    "original first, then its protected copy")
    for path in (photo, protected):
        if path is not None and os.path.isfile(path) and \
                path.name.lower().endswith(PREVIEW_SUFFIX):
            raise UnsupportedImageError(preview_sheet_refused(path))
    loaded = []
    for path in (photo, protected):
        if path is not None:
            named = load_named(path)  # RGBA when it has alpha
            loaded.append((photo_image(named), colour_profile(named)))
    fetch_weights(names if protected is not None else ("taesd",), model_dir, device)
    if protected is None:
        return receipt_one(photo, loaded[0][0], model_dir, device, ignored_options)
    return compare_one(photo, protected, loaded, measured, names, model_dir, device)


def receipt_one(photo: Path, image, model_dir: str | None, device: str | None,
                comparison_options: bool) -> dict:
    """verify with one photo: its receipt (taesd's no-reference score) said, notes on
    stderr, and its --json report returned. `comparison_options`: --channels or --models
    was given, which only a comparison with the original uses."""
    from cloak import io
    from cloak.receipt import RECEIPT_SMALLEST, receipt_image

    receipt = receipt_image(image, model_dir, device)
    notes = []  # said on stderr, and kept in --json

    def note(text: str) -> None:
        notes.append(text)
        say(f"note: {text}", color=typer.colors.YELLOW, err=True)

    if comparison_options:
        note("--channels and --models are for the comparison with the original (cloak "
             "verify ORIGINAL PROTECTED); a photo alone gets the receipt, which always uses "
             "taesd")
    score = shown_db(receipt.score_db, sign="+")
    threshold = shown_db(receipt.threshold_db, sign="+")
    small = not receipt.decided
    # under the calibrated size the threshold decides nothing: not "above means protected"
    # on the line before "can't tell" (a clean small photo scores above it)
    say(f"{printable(str(photo))}: {receipt.label} {score} dB "
        + (f"(threshold {threshold}, which decides nothing at this size)" if small else
           f"(threshold {threshold}; above means protected)"))
    if small:
        why = (f"the photo is {image.width}x{image.height}, under the {RECEIPT_SMALLEST} px "
               "the receipt was calibrated on (upscaled to be scored, a clean small photo "
               "scores as a protected one does)")
        notes.append(why)  # in --json too; said on the receipt's own line
        say(f"receipt: can't tell: {why}; compare it with the original to measure what "
            "it carries")
    else:
        say("receipt: " + ("protection detected (a hint, not proof: a soft or enlarged "
                           "photo, never protected, can read so too; and no measure of "
                           "its strength" if receipt.protected else
                           "no protection detected (a hint, not proof, and no measure of "
                           "its strength")
            + ": compare with the original for figures)")
    if receipt.protected is False and io.says_protected_file(photo):
        note("this file carries cloak's note, so cloak made it; the receipt often misses "
             "copies made at fast or low, and gray, text or very smooth photos (README, "
             "cloak verify): compare it with the original to measure what it carries")
    return {"kind": "receipt", "photo": str(photo), **receipt.to_dict(),
            "below_calibrated_size": small, "note": "; ".join(notes) or None,
            "cloak_version": __version__}


# what a channel that takes most of a copy's protection is, in a user's words
LOSSY_GEOMETRY = {"crop": "a crop of a few pixels", "grid": "an editor that rounds its "
                  "size down", "naive": "a resize without smoothing"}


def weak_verdict_advice(v) -> str | None:
    """What to do about a weak (or no) verdict (a Verification), where the copy carries
    more as it is: verify said "weak" and left a user there. None for moderate or strong,
    and where even as it is the copy carries none (a photo never protected: its own
    notes say so)."""
    if v.verdict not in ("weak", "none") or v.verdict_as_is in (None, "none"):
        return None
    stronger = "protect the original again with --strength high, which keeps more"
    if v.worst.channel in LOSSY_GEOMETRY and v.verdict_as_is in ("moderate", "strong"):
        return (f"most of this copy's protection is lost to {LOSSY_GEOMETRY[v.worst.channel]} "
                f"({v.worst.channel}; as it is, it is {v.verdict_as_is}): post it as it is, "
                "and crop or resize before protecting, not after; or " + stronger)
    return (f"to make it stronger, {stronger} (at more time); small or very flat photos "
            "hold less")


def compare_one(photo: Path, protected: Path, loaded: list, channels: tuple[str, ...],
                names: tuple[str, ...], model_dir: str | None, device: str | None) -> dict:
    """verify with an original and its copy (`loaded`: each one's image and ICC profile):
    the figures said, at 512 px and, for the SDXL and FLUX stand-ins, 1024; notes on
    stderr; and the --json report returned."""
    from cloak.compare import compare_copy, join_notes, swapped_note
    from cloak.models import ALL_MODEL_NAMES

    (original, original_icc), (copy, copy_icc) = loaded
    with measuring_bar("measuring") as progress:
        compared = compare_copy(original, copy, original_icc=original_icc,
                                copy_icc=copy_icc, copy_path=protected, channels=channels,
                                models=names, model_dir=model_dir, device=device,
                                at_1024=True, progress=progress)
    v, floor, original, copy = (compared.verification, compared.floor, compared.original,
                                compared.copy)
    if v.note:
        say(f"note: {printable(v.note)}", color=typer.colors.YELLOW, err=True)
    swapped = swapped_note(v, photo, protected)
    if swapped:
        say(f"note: {swapped}", color=typer.colors.YELLOW, err=True)
        v.note = join_notes(v.note, swapped)  # and in --json
    say(f"invisibility: PSNR {v.psnr:.1f} dB, SSIM {v.ssim:.3f}, "
        f"max change {v.max_change255:.0f}/255")
    say(f"{'':<10} {'damage dB':^{9 * len(names) - 1}}   latent shift")
    say(f"{'channel':<10} " + " ".join(f"{n:>8}" for n in names) + "   "
        + " ".join(f"{n:>8}" for n in names))
    for ch in v.channels:
        say(f"{ch.channel:<10} " + " ".join(shown_db(ch.damage_db[n], ">8") for n in names)
            + "   " + " ".join(f"{ch.latent_shift[n]:>8.2f}" for n in names))
    only = f"; on {', '.join(names)} only" if set(names) != set(ALL_MODEL_NAMES) else ""
    said_of_compression = " (all of it compression: see the note)" \
        if compared.all_compression else ""
    say(f"verdict: {v.verdict} (worst channel: {v.worst.channel}{only}); "
        f"as is ({as_is_means(original, copy)}): {v.verdict_as_is}{said_of_compression}")
    if v.damage_at_1024:
        say("at 1024 px, SDXL and FLUX's editing size (as it is): "
            + ", ".join(f"{n} {shown_db(d)}" for n, d in v.damage_at_1024.items())
            + f" dB: {v.verdict_at_1024}{said_of_compression} (the table and verdict "
            "above are at 512 px, SD 1.x/2.x's)")
    # (not "protect it again" where the figures are all compression: the note says why)
    advice = None if compared.all_compression else weak_verdict_advice(v)
    if advice:
        say(f"note: {advice}", color=typer.colors.YELLOW, err=True)
        v.note = join_notes(v.note, advice)  # and in --json, as every note printed
    # not "protected": with one photo that key is the receipt's yes or no
    return {"kind": "comparison", "original": str(photo), "protected_copy": str(protected),
            "models": list(names), **v.to_dict(),
            "compression_floor": floor.to_dict() if floor else None,
            "all_compression": compared.all_compression, "cloak_version": __version__}


def load_named(path: Path):
    """cloak.io.load_photo(path), its warnings (a corrupt EXIF block) naming the photo."""
    from cloak import io

    with naming(path):
        return io.load_photo(path)


def without_path(why: str, path: Path) -> str | None:
    """`why` (a failure's words) without the `path` it starts with ("PATH: ..." or "can't
    read PATH: ...": the line names the photo already), or None where it names none."""
    for said in (f"{path}: ", f"can't read {path}: "):
        if why.startswith(said):
            return why.removeprefix(said)
    return None


def item_failure(exc: BaseException, what: str, smaller: str) -> str:
    """The one-line reason one photo (or pair) of a folder run failed with `exc`, a
    CloakError, OSError or out-of-memory error (cloak.errors.out_of_memory_message, with
    `what` and `smaller`); any other RuntimeError is a bug and is raised again."""
    from cloak.errors import is_out_of_memory, out_of_memory_message

    if isinstance(exc, (MemoryError, RuntimeError)) and not is_out_of_memory(exc):
        raise exc
    if isinstance(exc, OSError) and exc.filename:
        return f"can't read {exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, (CloakError, OSError)):
        return str(exc)
    return out_of_memory_message(exc, what, smaller)


def unsearched_rows(unreadable: list[OSError], folder: Path, **blank) -> list[dict]:
    """Each folder that could not be listed (cloak.pairs.photos_under's `unreadable`),
    said on stderr, as a failed --json row (`blank`: the row's other keys, as the other
    rows have them), named as they are: relative to `folder`, where it is inside it."""
    rows = []
    for exc in unreadable:
        where = os.fspath(exc.filename or folder)
        try:
            inside = os.path.relpath(where, folder)
        except ValueError:  # another drive (Windows): no relative name
            inside = os.pardir
        name = (PurePosixPath(*Path(inside).parts).as_posix()
                if inside != os.curdir and not inside.startswith(os.pardir) else where)
        say(f"{printable(name)}: not searched: {exc.strerror or exc}",
            color=typer.colors.RED, err=True)
        rows.append({"name": name, **blank,
                     "error": f"folder not searched: {exc.strerror or exc}"})
    return rows


def receipt_folder(folder: Path, model_dir: str | None, device: str | None,
                   json_path: Path | None, options_given: bool) -> int:
    """`cloak verify FOLDER/`: the no-reference receipt of every photo under FOLDER (copies
    downloaded back from a platform, say), one line each, then how many were called
    protected. Returns the exit code: 0 when every photo was read, 2 when some could
    not be, 130 on Ctrl-C (the photos done are said and kept in --json)."""
    from cloak import io
    from cloak.pairs import photos_under
    from cloak.receipt import RECEIPT_SMALLEST, receipt_image
    from cloak.verify import photo_image

    unreadable: list[OSError] = []
    photos = photos_under(folder, unreadable)
    if not photos:
        why = f" ({unreadable[0].strerror or unreadable[0]})" if unreadable else ""
        raise CloakError(f"no photos in {folder} (looked in its subfolders "
                         f"too){why}")
    ignored = ("--channels and --models are for the comparison with the originals (cloak "
               "verify ORIGINALS/ PROTECTED/); photos alone get the receipt, which always "
               "uses taesd") if options_given else None
    if ignored:  # said on stderr, and kept in --json
        say(f"note: {ignored}", color=typer.colors.YELLOW, err=True)
    fetch_weights(("taesd",), model_dir, device)
    rows: list[dict] = []
    interrupted = False
    try:
        for path in photos:
            name = "/".join(path.relative_to(folder).parts)
            try:
                image = photo_image(load_named(path))
                receipt = receipt_image(image, model_dir, device)
            except (CloakError, OSError, MemoryError, RuntimeError) as exc:
                why = item_failure(exc, "to read it", "check a smaller copy")
                why = without_path(why, path) or why  # named on the line already
                say(f"{printable(name)}: not read: {printable(why)}",
                    color=typer.colors.RED, err=True)
                rows.append({"name": name, "photo": str(path), "protected": None,
                             "score_db": None, "error": why})
                continue
            small = not receipt.decided
            notes = []
            if small:
                notes.append(f"{image.width}x{image.height}, under the {RECEIPT_SMALLEST} px "
                             "the receipt was calibrated on")
            if receipt.protected is False and io.says_protected_file(path):
                notes.append("it carries cloak's note, so cloak made it: the receipt often "
                             "misses copies made at fast or low")
            verdict = {True: "protection detected", False: "no protection detected",
                       None: "can't tell"}[receipt.protected]
            say(f"{printable(name)}: {verdict}"
                + f" ({receipt.label} {shown_db(receipt.score_db, sign='+')} dB; threshold "
                  f"{shown_db(receipt.threshold_db, sign='+')})"
                + "".join(f"; {n}" for n in notes))
            rows.append({"name": name, "photo": str(path), **receipt.to_dict(),
                         "below_calibrated_size": small, "note": "; ".join(notes) or None})
    except KeyboardInterrupt:
        interrupted = True
    rows += unsearched_rows(unreadable, folder, photo=None, protected=None, score_db=None)
    found = sum(1 for row in rows if row.get("protected"))
    read = sum(1 for row in rows if "error" not in row)
    undecided = sum(1 for row in rows if row.get("below_calibrated_size"))
    decided = read - undecided
    failed = len(rows) - read
    say((f"protection detected in {found} of {decided} photo(s) (a hint, not proof, and no "
         "measure of its strength: compare with the originals for figures)" if decided else
         "no photo large enough for the receipt to tell" if read else
         "no photo could be read")
        + (f"; {undecided} too small to tell (under {RECEIPT_SMALLEST} px)"
           if undecided and decided else "")
        + (f"; {failed} not read" if failed else "")
        + (f"; interrupted, {len(photos) + len(unreadable) - len(rows)} not reached"
           if interrupted else ""))
    code = 130 if interrupted else 2 if failed else 0
    if json_path:  # one that can't be written keeps the run's own code, where it has one
        write_json(json_path, {"kind": "receipts", "folder": str(folder), "photos": rows,
                               "detected": found, "read": read, "undecided": undecided,
                               "failed": failed, "interrupted": interrupted,
                               "note": ignored,
                               **({"error": "interrupted"} if interrupted else {}),
                               "cloak_version": __version__}, code=code or 1)
    return code


def verify_folders(originals: Path, protected: Path, channels: tuple[str, ...],
                   names: tuple[str, ...], model_dir: str | None, device: str | None,
                   json_path: Path | None) -> int:
    """`cloak verify ORIGINALS/ PROTECTED/`: each copy under PROTECTED measured against its
    original (cloak.pairs), one line each, then the count of each verdict. Returns the
    exit code: 0 when every pair was measured (copies without an original are listed, not
    measured), 2 when some could not be, 130 on Ctrl-C (the pairs done are said and kept
    in --json); CloakError when none had its original."""
    from cloak.pairs import pair_folders

    unreadable: list[OSError] = []
    left_out: list[Path] = []  # photos in PROTECTED outside the copies of ORIGINALS
    pairs = pair_folders(originals, protected, unreadable, left_out)
    if not any(pair.original for pair in pairs):
        shut = next((pair.unreachable for pair in pairs if pair.unreachable), None)
        if shut is not None:  # the right folder, which can't be read: not "given wrong"
            raise CloakError(
                f"can't read {shut.filename}, where the originals of the "
                f"photos in {protected} are: {shut.strerror or shut}")
        from cloak.manifest import MANIFEST_NAME

        swapped = ((originals / MANIFEST_NAME).is_file()
                   and not (protected / MANIFEST_NAME).is_file())
        raise CloakError(
            f"none of the {len(pairs)} photo(s) in {protected} has its "
            f"original in {originals} (by the same path, the path below the "
            "folder's own name, or the contents cloak's record keeps): give the folder "
            "you protected, then cloak's"
            + (f"; {originals} is the folder cloak protect wrote to, so "
               "the two look swapped" if swapped else ""))
    fetch_weights(names, model_dir, device)
    rows: list[dict] = []
    counts: dict[str, int] = {}
    try:
        measure_pairs(pairs, originals, channels, names, model_dir, device, rows, counts)
        interrupted = False
    except KeyboardInterrupt:  # the pairs measured so far are kept, and said so
        interrupted = True
    rows += unsearched_rows(unreadable, protected, original=None, protected_copy=None,
                            verdict=None)
    failed = sum(1 for row in rows if row.get("error") not in (None, "no original found"))
    alone = sum(1 for row in rows if row.get("error") == "no original found")
    measured = sum(counts.values())
    summary = ", ".join(f"{verdict} {counts[verdict]}" for verdict in
                        ("strong", "moderate", "weak", "none") if verdict in counts)
    say(f"{measured} pair(s) measured" + (f": {summary}" if summary else "")
        + " (verdicts on each pair's worst channel)"
        + (f"; {alone} copy(ies) without an original" if alone else "")
        + (f"; {failed} not measured" if failed else "")
        + (f"; interrupted, {len(pairs) + len(unreadable) - len(rows)} not reached"
           if interrupted else ""))
    if left_out:  # the folder's copies are in its mirror; these came from other runs
        mirror = os.path.commonpath([str(pair.copy.parent) for pair in pairs])
        say(f"note: {len(left_out)} other photo(s) in {printable(str(protected))}, "
            f"outside {printable(mirror)} where this folder's copies are, were not "
            f"measured (such as {printable(str(left_out[0]))}: another run's copy?); "
            "verify such a copy with its original: cloak verify ORIGINAL COPY",
            color=typer.colors.YELLOW, err=True)
    code = 130 if interrupted else 2 if failed else 0
    if json_path:  # one that can't be written keeps the run's own code, where it has one
        write_json(json_path, {"kind": "folders", "originals": str(originals),
                               "protected_folder": str(protected), "models": list(names),
                               "channels": list(channels), "pairs": rows,
                               "verdicts": counts, "without_original": alone,
                               "failed": failed, "interrupted": interrupted,
                               **({"error": "interrupted"} if interrupted else {}),
                               "left_out": [str(photo) for photo in left_out],
                               "cloak_version": __version__}, code=code or 1)
    return code


def preview_sheet_refused(sheet: Path) -> str:
    """Why verify doesn't measure `sheet`, a --preview sheet, naming the copy it shows."""
    copy = sheet.with_name(sheet.name[:-len(PREVIEW_SUFFIX)])
    instead = (f"give the copy itself, {copy}" if copy.is_file()
               else "give the protected copy itself")
    return (f"{sheet} is a preview sheet cloak wrote beside a copy (the "
            f"copy, its change and its budget map side by side, *{PREVIEW_SUFFIX}), not "
            f"a photo to measure; {instead}")


def measure_pairs(pairs, originals: Path, channels: tuple[str, ...], names: tuple[str, ...],
                  model_dir: str | None, device: str | None, rows: list[dict],
                  counts: dict[str, int]) -> None:
    """verify_folders' loop: each pair measured and said, its row appended to `rows` and
    its verdict counted in `counts` as it is done (so a Ctrl-C keeps the pairs done)."""
    from cloak.compare import compare_copy, join_notes, swapped_note
    from cloak.verify import colour_profile, photo_image

    for i, pair in enumerate(pairs, 1):
        row = {"name": pair.name, "original": str(pair.original) if pair.original else None,
               "protected_copy": str(pair.copy), "verdict": None}  # as one pair's --json
        if pair.original is None and pair.unreachable is not None:  # not "none there"
            exc = pair.unreachable
            why = (f"its original's folder {exc.filename or originals} "
                   f"can't be read: {exc.strerror or exc}")
            row["error"] = f"original not reached: {why}"
            say(f"{printable(pair.name)}: not measured, {printable(why)}",
                color=typer.colors.RED, err=True)
            rows.append(row)
            continue
        if pair.original is None:
            row["error"] = "no original found"
            say(f"{printable(pair.name)}: not measured, no original of it in "
                f"{printable(str(originals))}")
            rows.append(row)
            continue
        try:
            loaded = [load_named(path) for path in (pair.original, pair.copy)]
            with measuring_bar(f"{i}/{len(pairs)} {printable(pair.name)}") as progress:
                compared = compare_copy(
                    photo_image(loaded[0]), photo_image(loaded[1]),
                    original_icc=colour_profile(loaded[0]), copy_icc=colour_profile(loaded[1]),
                    copy_path=pair.copy, channels=channels, models=names,
                    model_dir=model_dir, device=device, progress=progress)
            v, floor = compared.verification, compared.floor
            v.note = join_notes(pair.note, v.note, swapped_note(
                v, pair.original, pair.copy, "the folder of ORIGINALS, then PROTECTED"))
        except (CloakError, OSError, MemoryError, RuntimeError) as exc:
            why = item_failure(exc, "to compare them", "compare a smaller copy of both")
            for path, which in ((pair.copy, "the copy"), (pair.original, "the original")):
                if (rest := without_path(why, path)) is not None:  # the copy is named on
                    why = f"{which}: {rest}"  # the line already: which of the two it is
                    break
            row["error"] = why
            say(f"{printable(pair.name)}: not measured: {printable(why)}",
                color=typer.colors.RED, err=True)
            if pair.note:  # most likely why the two differ (named: stderr may not
                # interleave with a redirected stdout line by line)
                row["note"] = pair.note
                say(f"  note on {printable(pair.name)}: {printable(pair.note)}",
                    color=typer.colors.YELLOW, err=True)
            rows.append(row)
            continue
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
        weakest = min(v.worst.damage_db, key=v.worst.damage_db.get)
        # a copy renamed, moved or re-saved since is named with its original, found
        # otherwise: by its path as given (relative to ORIGINALS it read as one under
        # PROTECTED)
        against = (f" (original {printable(str(pair.original))})"
                   if pair.original.name != pair.copy.name or pair.by_record else "")
        all_compression = " (all of it compression: see the note)" \
            if compared.all_compression else ""
        say(f"{printable(pair.name)}{against}: {v.verdict} (worst channel "
            f"{v.worst.channel}: {weakest} {shown_db(v.worst.damage_db[weakest])} dB); "
            f"as is: {v.verdict_as_is}{all_compression}; PSNR {v.psnr:.1f} dB")
        if v.note:  # named: see above
            say(f"  note on {printable(pair.name)}: {printable(v.note)}",
                color=typer.colors.YELLOW, err=True)
        rows.append({**row, **v.to_dict(),
                     "compression_floor": floor.to_dict() if floor else None,
                     "all_compression": compared.all_compression})


@app.command(short_help="Open the desktop drag-and-drop app.")
def gui() -> None:
    """Open the desktop drag-and-drop app (needs PySide6: the gui extra,
    `pip install -e '.[gui]'` in a checkout, or `pip install PySide6-Essentials`).

    The app has no options: set these before it starts. CLOAK_MODEL_DIR=DIR: the folder
    of the weight files (else the user cache, else a download on first use; CLOAK_OFFLINE=1
    turns downloads off). CLOAK_DEVICE=cpu, cuda, cuda:N or mps: where to compute (auto:
    cuda, then mps, then cpu). CLOAK_MAX_PIXELS=N: the largest photo read, in pixels (200 MP by default)."""
    from cloak.gui.app import main as gui_main  # says itself when PySide6 is missing

    sys.exit(gui_main())


try:  # newer typer vendors click; TyperException is the base of its ClickException
    from typer import TyperException as UsageErrors
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:
    from click import ClickException as UsageErrors
    from click.exceptions import NoArgsIsHelpError, UsageError


def command_path_typed() -> str:
    """"cloak protect" (or verify, gui) as typed, "cloak" without a command: where the
    parser raised a usage error before it made a context to name it (`--out` last, with
    no value)."""
    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    typed = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    return "cloak" + (f" {typed}" if typed in commands else "")


# an output that can't be written: its reader gone, a full disk, a closed terminal
OUTPUT_GONE = frozenset({errno.EPIPE, errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC),
                         errno.EIO, errno.EBADF})


def mute(stream) -> None:
    """Send what is left for `stream` (whose reader has gone) to the null device, so that
    neither later lines nor Python's flush at exit raise BrokenPipeError again (as the
    Python docs advise for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


def coloured(color: str | None) -> str | None:
    """`color`, or None where the user asks for no colour: NO_COLOR set (no-color.org),
    or TERM=dumb (rich's bars and lines follow the same two)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return None
    return color


def echo_coloured(text: str, color: str | None, err: bool) -> None:
    """One line in `color` where colour is used (coloured), else plain: click's style
    ends even an uncoloured line with a reset code (ESC[0m), which a terminal that asked
    for no colour (TERM=dumb, NO_COLOR) showed on every line."""
    fg = coloured(color)
    if fg is None:
        typer.echo(text, err=err)
    else:
        typer.secho(text, fg=fg, err=err)


def say(text: str, err: bool = False, color: str | None = None) -> None:
    """One line of a result on stdout (verify's), or on stderr with `err` (protect's
    totals and notes): a reader that has gone (`| head`) costs the lines, not the result,
    its exit code or its --json report (as does any output that can't be written: a log
    on a full disk, a terminal closed), and a name in a script the output's code page
    lacks (Windows, redirected to a file) is escaped instead of failing."""
    stream = sys.stderr if err else sys.stdout
    try:
        try:
            echo_coloured(text, color, err)
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "ascii"
            echo_coloured(text.encode(encoding, "backslashreplace").decode(encoding), color,
                          err)
    except OSError:  # the reader gone (EPIPE), a full disk (ENOSPC), a closed terminal
        mute(stream)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:  # a photo's warnings name it (naming)
        name_photos(handler)
        handler.setFormatter(PrintableFormatter("%(levelname)s: %(message)s"))
    keep_freed_memory()  # glibc: reuse freed pages across attack steps (cloak/allocator.py)
    try:
        code = app(standalone_mode=False)
    except UsageErrors as exc:
        ctx = getattr(exc, "ctx", None)
        if ((ctx is not None or isinstance(exc, UsageError)) and hasattr(exc, "format_message")
                and not isinstance(exc, NoArgsIsHelpError)):  # a usage error: one line,
            # as cloak's own errors (click's usage block made it four); bare `cloak`: help
            where = ctx.command_path if ctx is not None else command_path_typed()
            typer.echo(f"error: {exc.format_message()} (see: {where} --help)", err=True)
        else:
            exc.show()
        code = 1 if exc.exit_code == 2 else exc.exit_code  # 2 means "some photos failed"
    except typer.Abort:
        code = 130
    except OSError as exc:  # `cloak --help | head -1`: the reader has what it wanted
        if exc.errno not in OUTPUT_GONE:  # (or --help > /dev/full)
            raise
        mute(sys.stdout)
        mute(sys.stderr)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
