"""cloak's desktop app (PySide6): drop photos, get protected copies.

`window.py` holds the main window, `drop_zone.py` the drop zone (which only emits a
signal), `widgets.py` the photo rows and the before/after panel, `worker.py` the QThread
worker that calls `cloak.protect_file`, `signals.py` a guard around a PySide leak in
emit(), and `app.py` the entry point. `paths.py` and `images.py`
are Qt-free helpers: which files to take, where to write, what to display.
Install with `pip install -e '.[gui]'` in the project (the `gui` extra); start with `cloak gui` or `cloak-gui`.
"""
